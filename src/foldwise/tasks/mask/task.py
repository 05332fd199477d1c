"""The mask task: the competition's layout, the 18 classes, loss, macro F1 and submission."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.base import Task
from ..common.imagefolder import images_by_stem, load_image, raw_image_sizes, require_image_files
from ..common.tables import check_choices, check_filled, check_numbers, check_unique, csv_row, read_csv_checked

if TYPE_CHECKING:
    import torch

TRAIN_CSV, INFO_CSV = "train/train.csv", "eval/info.csv"
TRAIN_IMAGES, EVAL_IMAGES = "train/images", "eval/images"
# The seven photos of every person and their mask state: worn 0, incorrect 1, not worn 2.
PHOTOS = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
GENDERS = {"male": 0, "female": 1}
HEADS = (3, 2, 3)  # mask, gender, age group: the logits of ``head: multi``
N_CLASSES = HEADS[0] * HEADS[1] * HEADS[2]
CLASS_COLUMNS = [f"prob_{c}" for c in range(N_CLASSES)]
WIDTH, HEIGHT = 384, 512



def age_group(age: np.ndarray, young: int, old: int) -> np.ndarray:
    """0 below ``young``, 2 from ``old`` on, else 1 (int64)."""
    age = np.asarray(age)
    return np.where(age < young, 0, np.where(age >= old, 2, 1)).astype(np.int64)


def class_code(mask: np.ndarray, gender: np.ndarray, age_grp: np.ndarray) -> np.ndarray:
    """The 18-class label ``mask * 6 + gender * 3 + age_group``."""
    return np.asarray(mask) * 6 + np.asarray(gender) * 3 + np.asarray(age_grp)


def split_code(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of ``class_code``: (mask, gender, age_group)."""
    classes = np.asarray(classes)
    return classes // 6, (classes // 3) % 2, classes % 3


class MaskTask(Task):
    name = "mask"
    competition = "boostcamp-mask-image-classification"  # an AI Stages competition, not on Kaggle
    on_kaggle = False
    marker_file = TRAIN_CSV
    sample_submission = INFO_CSV
    metric_name = "f1"
    greater_is_better = True
    target_columns = ["ans"]
    pred_columns = ["ans"]
    prob_columns = CLASS_COLUMNS
    image_scale = "imagenet"  # load_image: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    # A mirrored face keeps its mask, gender and age; an upside-down one is not a photo the eval set holds.
    train_augment = [{"HorizontalFlip": {"p": 0.5}}]

    def required_files(self) -> list[str]:
        return [TRAIN_CSV, INFO_CSV, TRAIN_IMAGES, EVAL_IMAGES]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        """``n_train`` photos (rounded up to whole people, 7 each) and ``n_test`` eval photos."""
        from .synthetic import generate_mask_data, people_for

        generate_mask_data(Path(root), people_for(n_train), n_test, seed, strength)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        root = Path(root)
        if split == "test":
            return read_eval_table(root)
        tp = params.task_params
        if tp.age_bound_young >= tp.age_bound_old:
            raise FoldwiseError(f"mask.age_bound_young ({tp.age_bound_young}) must be below "
                                f"mask.age_bound_old ({tp.age_bound_old})")
        return read_train_table(root, tp.age_bound_young, tp.age_bound_old)

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        for sample_id, file in zip(table["id"], table["file"]):
            yield load_image(Path(root) / file, f"id {sample_id!r}", params.img_size, params.task_params.resize)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """Each photo's size and band count, from its header."""
        return raw_image_sizes(Path(root) / file for file in table["file"])

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "multiclass"  # ans, the class index 0-17

    def num_logits(self, params: Any) -> int:
        return sum(HEADS) if params.task_params.head == "multi" else N_CLASSES

    def loss(self, params: Any) -> torch.nn.Module:
        from .losses import MaskLoss

        return MaskLoss(params.task_params.head, params.train.label_smoothing)

    def logits_to_probs(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        import torch

        from .losses import multi_head_probs

        logits = logits.float()
        if params.task_params.head == "multi":
            return multi_head_probs(logits)
        return torch.softmax(logits, dim=1)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 18) -> the argmax class as int64 (N, 1)."""
        return np.argmax(np.asarray(probs), axis=1).astype(np.int64)[:, None]

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import f1_score  # ~0.5 s import, only where a metric is computed

        true = np.asarray(y_true).reshape(-1).astype(np.int64)
        return float(f1_score(true, self.decode(y_pred)[:, 0], average="macro"))

    # ---- outputs --------------------------------------------------------------------------------
    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """One point per photo for the confusion matrix (.dvc/plots/mask.json): x true class, y predicted."""
        true = np.asarray(y_true).reshape(-1).astype(np.int64)
        return [{"x": int(t), "y": int(p)} for t, p in zip(true, self.decode(y_pred)[:, 0])]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        ans = sub["ans"].to_numpy()
        if not np.issubdtype(ans.dtype, np.integer) or (ans < 0).any() or (ans >= N_CLASSES).any():
            raise FoldwiseError(f"submission ans must be integer classes 0-{N_CLASSES - 1}")



# ---- tables -------------------------------------------------------------------------------------
def read_train_table(root: Path, young: int, old: int) -> pd.DataFrame:
    """One row per photo: id ``<path>/<stem>``, ans, stratify (= ans), group (the person), file."""
    path = root / TRAIN_CSV
    df = read_csv_checked(path, ["id", "gender", "race", "age", "path"], dtype={"id": str, "path": str})
    check_filled(df, path, ["id", "gender", "age", "path"], key="id")
    check_unique(df, path, "path")
    gender = check_choices(df, path, "gender", GENDERS, key="id")
    age = check_numbers(df, path, "age", lo=0, hi=130, integer=True, key="id").to_numpy()
    person_class = class_code(0, gender, age_group(age, young, old))
    rows = []
    for i, folder_name in enumerate(df["path"]):
        folder = root / TRAIN_IMAGES / folder_name
        if not folder.is_dir():
            raise FoldwiseError(f"{path}: path {folder_name!r} in row {csv_row(i)} has no folder {folder}")
        photos = images_by_stem(folder)
        for stem, mask_state in PHOTOS.items():
            if stem not in photos:
                raise FoldwiseError(f"{path}: path {folder_name!r} in row {csv_row(i)}: {folder} has no "
                                    f"{stem} image (.jpg, .jpeg or .png)")
            rows.append((f"{folder_name}/{stem}", int(person_class[i] + 6 * mask_state), folder_name,
                         str(photos[stem].relative_to(root))))
    table = pd.DataFrame(rows, columns=["id", "ans", "group", "file"])
    table["stratify"] = table["ans"]
    return table


def read_eval_table(root: Path) -> pd.DataFrame:
    """One row per info.csv row, in its order: id (= ImageID) and file."""
    path = root / INFO_CSV
    info = read_csv_checked(path, ["ImageID", "ans"], dtype={"ImageID": str})
    check_filled(info, path, ["ImageID"])
    check_unique(info, path, "ImageID")
    files = [root / EVAL_IMAGES / image_id for image_id in info["ImageID"]]
    require_image_files(files, path, "ImageID", info["ImageID"])
    return pd.DataFrame({"id": info["ImageID"], "file": [str(f.relative_to(root)) for f in files]})



TASK = MaskTask()
