"""PetFinder.my - Pawpularity Contest (regression 1-100, RMSE).

Kaggle layout::

    train.csv              Id,Subject Focus,Eyes,Face,Near,Action,Accessory,Group,Collage,Human,
                           Occlusion,Info,Blur,Pawpularity   (flags 0/1, Pawpularity integer 1-100)
    train/<Id>.jpg         photos of varied sizes and aspect ratios
    test.csv               Id + the 12 flags
    test/<Id>.jpg
    sample_submission.csv  Id,Pawpularity

Ids are 32 hex characters. The synthetic generator renders simple cartoon "pets" whose visible
properties follow the flags; the score is driven mostly by the pet's fur tone (dark grey-brown to
bright golden), weakly by the flags, and heavily by noise, so the flags alone barely beat predicting
the mean while an image model can.
"""
from __future__ import annotations

from ..common.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from ...params.task_groups import PetfinderParams
from .synthetic import synthetic_flags, synthetic_score
from .task import FLAGS, TARGET, TASK, PetfinderTask, merge_sparse_bins, sturges_bins

__all__ = ["FLAGS", "IMAGENET_MEAN", "IMAGENET_STD", "TARGET", "TASK", "PetfinderParams", "PetfinderTask",
           "merge_sparse_bins", "sturges_bins", "synthetic_flags", "synthetic_score"]
