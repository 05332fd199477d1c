"""Mask wear, gender and age group from face photos (BoostCamp AI Tech P-stage 1; 18 classes, macro F1).

Layout (the competition's archive)::

    train/train.csv          id,gender,race,age,path   e.g. 000001,female,Asian,45,000001_female_Asian_45
    train/images/<path>/     seven photos of that person: mask1 ... mask5, incorrect_mask, normal,
                             each .jpg, .jpeg or .png (mixed), 384x512 RGB; hidden ._* files are skipped
    eval/info.csv            ImageID,ans   (the submission template: ans is filled with the class)
    eval/images/<ImageID>

A sample is one photo, id ``<path>/<file stem>`` (e.g. ``000001_female_Asian_45/mask3``). Its class is
``mask * 6 + gender * 3 + age_group``: mask worn 0 / incorrect 1 / not worn (``normal``) 2, gender
male 0 / female 1, age group 0 below ``age_bound_young``, 2 from ``age_bound_old`` on, else 1.
Folds keep each person (``group``) whole, stratified on the class. The metric is scikit-learn's
``f1_score(average="macro")`` of the argmax class. ``head: multi`` is the write-up's three heads
(mask 3, gender 2, age 3 logits, summed cross-entropies), decoded to the 18 classes as the product
of the three softmaxes.
"""
from __future__ import annotations

from ...params.task_groups import MaskParams
from .task import CLASS_COLUMNS, HEADS, N_CLASSES, PHOTOS, TASK, MaskTask, age_group, class_code, split_code

__all__ = ["CLASS_COLUMNS", "HEADS", "N_CLASSES", "PHOTOS", "TASK", "MaskParams", "MaskTask", "age_group",
           "class_code", "split_code"]
