"""SETI Breakthrough Listen - E.T. Signal Search (binary, ROC-AUC).

Kaggle layout::

    train/<id[0]>/<id>.npy   float16 (6, 273, 256): cadence A B A C A D, axis 1 time, axis 2 frequency
    train_labels.csv         id,target
    test/<id[0]>/<id>.npy
    sample_submission.csv    id,target

The ON-target frames are 0, 2 and 4. A technosignature is a narrowband drifting line that is
present in the ON frames only; interference shows up in all six frames.
"""
from __future__ import annotations

from ...params.task_groups import SetiParams
from .synthetic import synthetic_cadence
from .task import CADENCE_SHAPE, ON_FRAMES, TASK, SetiTask, cadence_to_image, load_cadence

__all__ = ["CADENCE_SHAPE", "ON_FRAMES", "TASK", "SetiParams", "SetiTask", "cadence_to_image", "load_cadence",
           "synthetic_cadence"]
