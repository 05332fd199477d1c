"""foldwise: reproducible DVC pipelines for Kaggle image and spectrogram competitions."""
import os

# albumentations checks PyPI for a newer version at import time; never phone home.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
