"""ImageNet's per-channel RGB mean and std (of pixel values in [0, 1]): how photo tasks normalise their
images and what most pretrained weights expect."""
from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
