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

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from ..core.errors import FoldwiseError
from ..core.params import bounded, choice
from .common.base import Task
from .common.imagefolder import RESIZES, images_by_stem, load_image, require_image_files
from .common.synthetic import unique_hex_ids
from .common.tables import check_choices, check_filled, check_numbers, check_unique, csv_row, read_csv_checked

TRAIN_CSV, INFO_CSV = "train/train.csv", "eval/info.csv"
TRAIN_IMAGES, EVAL_IMAGES = "train/images", "eval/images"
# The seven photos of every person and their mask state: worn 0, incorrect 1, not worn 2.
PHOTOS = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
GENDERS = {"male": 0, "female": 1}
HEADS = (3, 2, 3)  # mask, gender, age group: the logits of ``head: multi``
N_CLASSES = HEADS[0] * HEADS[1] * HEADS[2]
CLASS_COLUMNS = [f"prob_{c}" for c in range(N_CLASSES)]
WIDTH, HEIGHT = 384, 512


@dataclass(frozen=True)
class MaskParams:
    """Age groups, the model head and how the 384x512 portraits become squares."""

    age_bound_young: int = bounded(30, lo=1)  # age below this: group 0
    age_bound_old: int = bounded(60, lo=2)  # age from this on: group 2 (teams moved it to 58-59)
    head: str = choice("single", "multi", default="single")  # multi: mask 3 + gender 2 + age 3 logits
    resize: str = choice(*RESIZES, default="squash")  # crop: the centre 384x384, then resize


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
    Params = MaskParams
    image_scale = "imagenet"  # load_image: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    # A mirrored face keeps its mask, gender and age; an upside-down one is not a photo the eval set holds.
    train_augment = [{"HorizontalFlip": {"p": 0.5}}]

    def required_files(self) -> list[str]:
        return [TRAIN_CSV, INFO_CSV, TRAIN_IMAGES, EVAL_IMAGES]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        """``n_train`` photos (rounded up to whole people, 7 each) and ``n_test`` eval photos."""
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
        for file in table["file"]:
            with Image.open(Path(root) / file) as img:
                yield img.height, img.width, len(img.getbands())

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "multiclass"  # ans, the class index 0-17

    def num_logits(self, params: Any) -> int:
        return sum(HEADS) if params.task_params.head == "multi" else N_CLASSES

    def loss(self, params: Any) -> torch.nn.Module:
        return MaskLoss(params.task_params.head, params.train.label_smoothing)

    def predict(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        logits = logits.float()
        if params.task_params.head == "multi":
            return multi_head_probs(logits)
        return torch.softmax(logits, dim=1)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 18) -> the argmax class as int64 (N, 1)."""
        return np.argmax(np.asarray(probs), axis=1).astype(np.int64)[:, None]

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        from sklearn.metrics import f1_score  # ~0.5 s import; every stage loads this module for its Params

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


class MaskLoss(torch.nn.Module):
    """Cross-entropy against targets (N, 1) of class indices, or (N, 18) of class probabilities (the
    one-hot rows CutMix/MixUp blend). ``single``: one 18-way softmax; ``multi``: logits (N, 8) =
    mask 3 | gender 2 | age 3, the sum of the three heads' cross-entropies, each head's soft target
    the marginal of the 18-class one (a blend of its one-hot rows)."""

    class_targets = True  # the Trainer mixes them as one-hot rows (engine/mixing.py)

    def __init__(self, head: str = "single", smoothing: float = 0.0):
        super().__init__()
        self.head, self.smoothing = head, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        ce = torch.nn.functional.cross_entropy
        if targets.shape[1] == 1:
            classes = targets.reshape(-1).long()
            labels = (classes,) if self.head == "single" else (classes // 6, (classes // 3) % 2, classes % 3)
        else:
            probs = targets.float()
            cube = probs.reshape(-1, *HEADS)  # (N, mask, gender, age) in class_code order
            labels = (probs,) if self.head == "single" else (cube.sum((2, 3)), cube.sum((1, 3)), cube.sum((1, 2)))
        parts = (logits,) if self.head == "single" else torch.split(logits, HEADS, dim=1)
        return sum(ce(part, label, label_smoothing=self.smoothing) for part, label in zip(parts, labels))


def multi_head_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits (N, 8) = mask 3 | gender 2 | age 3 -> 18-class probabilities (N, 18), the product of the
    three softmaxes, in ``class_code`` order (mask * 6 + gender * 3 + age)."""
    mask, gender, age = (torch.softmax(part, dim=1) for part in torch.split(logits, HEADS, dim=1))
    return torch.einsum("nm,ng,na->nmga", mask, gender, age).reshape(len(logits), N_CLASSES)


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


# ---- synthetic generator ------------------------------------------------------------------------
RACES = {"Asian": 0.85, "White": 0.08, "Black": 0.04, "Hispanic": 0.03}
SKIN = {"Asian": (233, 196, 160), "White": (242, 208, 186), "Black": (122, 82, 58), "Hispanic": (204, 160, 120)}
MASK_COLOURS = [(245, 245, 245), (30, 30, 35), (90, 140, 220), (230, 150, 170), (120, 120, 125), (60, 90, 60)]
SUFFIX_RATES = {".jpg": 0.8, ".jpeg": 0.1, ".png": 0.1}
# Age groups draw ages from these ranges; the real data is mostly young adults and people in their 50s.
AGE_RANGES = [(18, 29, 0.42), (30, 59, 0.43), (60, 75, 0.15)]
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # what a ._* resource fork starts with


def people_for(n_images: int) -> int:
    """Whole people for about ``n_images`` training photos (7 each), at least 12 (every gender x age cell twice)."""
    return max(12, -(-n_images // len(PHOTOS)))


def generate_mask_data(root: Path, n_people: int, n_eval: int, seed: int, strength: float) -> None:
    """The competition layout under ``root`` (deterministic in seed); eval/info.csv's ans is 0 as in the archive."""
    rng = np.random.default_rng((seed, 0))
    people = synthetic_people(rng, n_people)
    (root / TRAIN_IMAGES).mkdir(parents=True, exist_ok=True)
    for i, person in people.iterrows():
        folder = root / TRAIN_IMAGES / person["path"]
        folder.mkdir()
        img_rng = np.random.default_rng((seed, 1, i))
        look = person_look(img_rng, person)
        for stem in PHOTOS:
            suffix = str(img_rng.choice(list(SUFFIX_RATES), p=list(SUFFIX_RATES.values())))
            save_photo(render_face(img_rng, look, PHOTOS[stem], strength), folder / f"{stem}{suffix}", img_rng)
        if img_rng.random() < 0.1:  # macOS junk the archive carries beside real photos
            (folder / f"._{next(iter(PHOTOS))}.jpg").write_bytes(APPLEDOUBLE)
    (root / TRAIN_IMAGES / f"._{people['path'].iloc[0]}").write_bytes(APPLEDOUBLE)
    people.to_csv(root / TRAIN_CSV, index=False)

    eval_rng = np.random.default_rng((seed, 2))
    eval_people = synthetic_people(eval_rng, max(1, -(-n_eval // len(PHOTOS))))
    image_ids = [f"{h}.jpg" for h in unique_hex_ids(eval_rng, n_eval, 40)]
    (root / EVAL_IMAGES).mkdir(parents=True, exist_ok=True)
    for j, image_id in enumerate(image_ids):
        img_rng = np.random.default_rng((seed, 3, j))
        person = eval_people.iloc[j // len(PHOTOS)]
        look = person_look(np.random.default_rng((seed, 4, j // len(PHOTOS))), person)
        stem = list(PHOTOS)[j % len(PHOTOS)]
        save_photo(render_face(img_rng, look, PHOTOS[stem], strength), root / EVAL_IMAGES / image_id, img_rng)
    pd.DataFrame({"ImageID": image_ids, "ans": 0}).to_csv(root / INFO_CSV, index=False)


def synthetic_people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """train.csv rows: 6-digit ids, genders and ages with every gender x age-group cell present."""
    cells = [(g, a) for g in GENDERS for a in range(len(AGE_RANGES))]
    first = [cells[i % len(cells)] for i in range(min(n, 2 * len(cells)))]
    rest_g = rng.choice(list(GENDERS), size=n - len(first), p=[0.4, 0.6])
    rest_a = rng.choice(len(AGE_RANGES), size=n - len(first), p=[w for _, _, w in AGE_RANGES])
    genders = [g for g, _ in first] + list(rest_g)
    groups = [a for _, a in first] + list(rest_a)
    ages = [int(rng.integers(AGE_RANGES[a][0], AGE_RANGES[a][1] + 1)) for a in groups]
    races = rng.choice(list(RACES), size=n, p=list(RACES.values()))
    ids = [f"{k + 1:06d}" for k in range(n)]
    return pd.DataFrame({"id": ids, "gender": genders, "race": races, "age": ages,
                         "path": [f"{i}_{g}_{r}_{a}" for i, g, r, a in zip(ids, genders, races, ages)]})


def person_look(rng: np.random.Generator, person: pd.Series) -> dict:
    """What stays the same across a person's seven photos. Gender and age show only as tendencies."""
    female = person["gender"] == "female"
    age = int(person["age"])
    grey = float(np.clip((age - 35) / 35 + rng.normal(0, 0.25), 0, 1))  # hair greys with age, noisily
    hair = np.array([40, 30, 25]) * (1 - grey) + np.array([185, 185, 185]) * grey
    return {
        "skin": tuple(int(c) for c in np.clip(np.array(SKIN[person["race"]]) + rng.normal(0, 10, 3), 0, 255)),
        "hair": tuple(int(c) for c in np.clip(hair + rng.normal(0, 8, 3), 0, 255)),
        "long_hair": bool(rng.random() < (0.75 if female else 0.2)),
        "wrinkles": bool(rng.random() < float(np.clip((age - 25) / 40, 0.05, 0.9))),
        "face_w": float(rng.uniform(0.52, 0.62) * (0.94 if female else 1.0)),
        "background": tuple(int(c) for c in rng.integers(60, 230, 3)),
        "shirt": tuple(int(c) for c in rng.integers(20, 230, 3)),
        "mask_colour": MASK_COLOURS[int(rng.integers(len(MASK_COLOURS)))],
    }


def render_face(rng: np.random.Generator, look: dict, mask_state: int, strength: float) -> Image.Image:
    """A 384x512 RGB portrait. ``mask_state`` 0 covers nose and mouth, 1 the mouth and chin only
    (nose out), 2 no mask. ``strength`` < 1 fades the mask toward the skin colour (a harder task)."""
    img = Image.new("RGB", (WIDTH, HEIGHT), look["background"])
    draw = ImageDraw.Draw(img)
    cx = WIDTH / 2 + rng.normal(0, 14)
    cy = HEIGHT * 0.45 + rng.normal(0, 14)
    fw = look["face_w"] * WIDTH * rng.uniform(0.95, 1.05)
    fh = fw * 1.3
    draw.rectangle([cx - fw * 0.9, cy + fh * 0.55, cx + fw * 0.9, HEIGHT], fill=look["shirt"])  # shoulders
    if look["long_hair"]:
        draw.rectangle([cx - fw * 0.62, cy - fh * 0.3, cx + fw * 0.62, cy + fh * 0.75], fill=look["hair"])
    draw.ellipse([cx - fw * 0.55, cy - fh * 0.62, cx + fw * 0.55, cy + fh * 0.3], fill=look["hair"])  # top of head
    draw.ellipse([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], fill=look["skin"])
    for ex in (-0.2, 0.2):  # eyes
        x, y = cx + ex * fw, cy - 0.08 * fh
        draw.ellipse([x - 0.06 * fw, y - 0.03 * fh, x + 0.06 * fw, y + 0.03 * fh], fill=(250, 250, 250))
        draw.ellipse([x - 0.025 * fw, y - 0.025 * fh, x + 0.025 * fw, y + 0.025 * fh], fill=(30, 20, 15))
    if look["wrinkles"]:
        for k in range(3):
            y = cy - (0.25 + 0.05 * k) * fh
            draw.line([(cx - 0.2 * fw, y), (cx + 0.2 * fw, y)], fill=tuple(int(c * 0.8) for c in look["skin"]), width=2)
    nose = tuple(int(c * 0.8) for c in look["skin"])
    draw.polygon([(cx, cy - 0.02 * fh), (cx - 0.06 * fw, cy + 0.12 * fh), (cx + 0.06 * fw, cy + 0.12 * fh)], fill=nose)
    draw.ellipse([cx - 0.14 * fw, cy + 0.2 * fh, cx + 0.14 * fw, cy + 0.27 * fh], fill=(170, 60, 60))  # mouth
    if mask_state < 2:
        colour = np.array(look["mask_colour"], dtype=np.float64)
        colour = tuple(int(c) for c in np.array(look["skin"]) * (1 - min(strength, 1.0)) + colour * min(strength, 1.0))
        top = cy + (0.0 if mask_state == 0 else 0.16) * fh + rng.normal(0, 0.015) * fh
        bottom = cy + (0.42 if mask_state == 0 else 0.48) * fh
        draw.rounded_rectangle([cx - 0.47 * fw, top, cx + 0.47 * fw, bottom], radius=int(0.08 * fw), fill=colour)
        for side in (-1, 1):  # ear loops
            draw.line([(cx + side * 0.47 * fw, top + 0.03 * fh), (cx + side * 0.52 * fw, cy - 0.05 * fh)],
                      fill=colour, width=4)
    gain = float(rng.uniform(0.85, 1.15))  # exposure
    return img.point([min(255, int(v * gain)) for v in range(256)] * 3)


def save_photo(img: Image.Image, path: Path, rng: np.random.Generator) -> None:
    if path.suffix == ".png":
        img.save(path, "PNG", compress_level=1)
    else:
        img.save(path, "JPEG", quality=int(rng.integers(80, 96)))


TASK = MaskTask()
