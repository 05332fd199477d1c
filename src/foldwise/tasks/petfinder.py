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

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..core.errors import FoldwiseError
from .common.base import Task
from .common.imagefolder import IMAGENET_MEAN, IMAGENET_STD, RESIZES, load_image  # noqa: F401 (re-exported)
from .common.synthetic import unique_hex_ids
from .common.tables import check_filled, check_numbers, check_unique, read_csv_checked

FLAGS = ["Subject Focus", "Eyes", "Face", "Near", "Action", "Accessory", "Group", "Collage",
         "Human", "Occlusion", "Info", "Blur"]
TARGET = "Pawpularity"
ID_HEX_DIGITS = 32

# Synthetic data: flag rates close to the real train.csv, and target moments of the real Pawpularity.
FLAG_RATES = {"Subject Focus": 0.03, "Face": 0.90, "Near": 0.86, "Action": 0.01, "Accessory": 0.07,
              "Group": 0.13, "Collage": 0.05, "Human": 0.17, "Occlusion": 0.17, "Info": 0.06, "Blur": 0.07}
EYES_GIVEN_FACE = 0.85  # eyes are only drawn on a visible face, and never on a blurred photo
# Weak flag effects in Pawpularity points (together they explain well under 1% of the variance).
FLAG_EFFECTS = {"Subject Focus": 1.0, "Eyes": 1.0, "Face": 0.5, "Near": 1.0, "Action": 1.0, "Accessory": 0.5,
                "Group": 2.0, "Collage": 1.0, "Human": -1.0, "Occlusion": -1.0, "Info": -1.5, "Blur": -3.0}
TARGET_MEAN, TARGET_STD = 38.0, 20.6
SCORE_LOC, SCORE_SCALE = 38.3, 21.85  # before rounding and clipping to 1-100, which pull mean and sd in
IMAGE_WEIGHT = 0.8   # share (in latent sd) of the fur tone at strength 1; the rest is noise
SKEW_SIGMA = 0.42    # log-normal shape of the right skew
# Fur tone 0 -> dark grey-brown, 1 -> bright golden.
FUR_DARK = np.array([52, 46, 44], dtype=np.float64)
FUR_BRIGHT = np.array([250, 190, 80], dtype=np.float64)
BACKGROUNDS = [(96, 140, 70), (120, 160, 200), (150, 150, 150), (200, 190, 170), (170, 120, 90),
               (90, 90, 110), (210, 210, 215), (140, 110, 150)]
SKIN = [(241, 194, 150), (224, 172, 105), (198, 134, 66), (141, 85, 36)]
WORDS = ["ADOPT ME", "FOR ADOPTION", "CALL 012-3456", "PLS SHARE", "FREE", "PETFINDER", "URGENT"]


class PetfinderTask(Task):
    name = "petfinder"
    competition = "petfinder-pawpularity-score"
    marker_file = "train.csv"
    metric_name = "rmse"
    greater_is_better = False
    target_columns = [TARGET]
    pred_columns = [TARGET]
    # Mirror and upside-down photos, as the seed's augmenter does (its ratings do not depend on them).
    train_augment = [{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}]
    image_scale = "imagenet"  # load_photo: RGB / 255, then (x - IMAGENET_MEAN) / IMAGENET_STD
    rgb_images = True  # photos: explain overlays show them in colour

    def required_files(self) -> list[str]:
        return [self.marker_file, "test.csv", self.sample_submission, "train", "test"]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        root = Path(root)
        ids = unique_hex_ids(np.random.default_rng((seed, 0)), n_train + n_test, ID_HEX_DIGITS)
        for split, split_ids, stream in (("train", ids[:n_train], 1), ("test", ids[n_train:], 2)):
            rng = np.random.default_rng((seed, stream))
            flags = synthetic_flags(rng, len(split_ids))
            tone = rng.standard_normal(len(split_ids))  # the image property behind the score
            score = synthetic_score(rng, flags, tone, strength)
            (root / split).mkdir(parents=True, exist_ok=True)
            for i, pid in enumerate(split_ids):
                img_rng = np.random.default_rng((seed, 10 + stream, i))
                image = render_photo(img_rng, flags.iloc[i].to_dict(), _norm_cdf(tone[i]))
                image.save(root / split / f"{pid}.jpg", "JPEG", quality=int(img_rng.integers(75, 96)))
            table = pd.concat([pd.DataFrame({"Id": split_ids}), flags], axis=1)
            if split == "train":
                table[TARGET] = score
                table.to_csv(root / "train.csv", index=False)
            else:
                table.to_csv(root / "test.csv", index=False)
                pd.DataFrame({"Id": split_ids, TARGET: TARGET_MEAN}).to_csv(root / self.sample_submission, index=False)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        root = Path(root)
        use_meta = params.task_params.use_meta
        if split == "test":
            path = root / self.sample_submission
            sample = read_csv_checked(path, ["Id"], dtype={"Id": str})
            _check_ids(sample["Id"], path)
            table = pd.DataFrame({"id": sample["Id"].astype(str)})
            if use_meta:
                test_path = root / "test.csv"
                flags = _check_flags(read_csv_checked(test_path, ["Id", *FLAGS], dtype={"Id": str}), test_path)
                _check_ids(flags["Id"], test_path)
                by_id = flags.set_index("Id")
                missing = table["id"][~table["id"].isin(by_id.index)]
                if len(missing):
                    raise FoldwiseError(f"{test_path}: no row for Id {missing.iloc[0]!r} of {self.sample_submission}")
                for col in FLAGS:
                    table[col] = by_id.loc[table["id"], col].to_numpy(dtype=float)
            return table
        path = root / self.marker_file
        df = read_csv_checked(path, ["Id", *FLAGS, TARGET], dtype={"Id": str})
        _check_ids(df["Id"], path)
        df = _check_flags(df, path)
        score = check_numbers(df, path, TARGET, lo=1, hi=100, key="Id")
        table = pd.DataFrame({"id": df["Id"].astype(str), TARGET: score.astype(float)})
        bins = sturges_bins(table[TARGET].to_numpy())
        table["stratify"] = merge_sparse_bins(bins, min_count=params.n_splits)
        if use_meta:
            for col in FLAGS:
                table[col] = df[col].astype(float)
        return table

    def meta_columns(self, params: Any) -> list[str]:
        return list(FLAGS) if params.task_params.use_meta else []

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        for pid in table["id"]:
            yield load_image(Path(root) / split / f"{pid}.jpg", f"Id {pid!r}", params.img_size, params.task_params.resize)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """Each photo's size and band count, from its header (pixels are not decoded)."""
        for pid in table["id"]:
            with Image.open(Path(root) / split / f"{pid}.jpg") as img:
                yield img.height, img.width, len(img.getbands())

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "regression"

    def loss(self, params: Any) -> torch.nn.Module:
        return PawpularityLoss(params.task_params.loss)

    def predict(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        logits = logits.float()
        scaled = torch.sigmoid(logits) if params.task_params.loss == "bce" else logits
        return (scaled * 100.0).clamp(1.0, 100.0)

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        y = np.asarray(y_true, dtype=np.float64).reshape(-1)
        p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
        return float(np.sqrt(np.mean((y - p) ** 2)))

    # ---- outputs --------------------------------------------------------------------------------
    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """Predicted (y) vs true (x) Pawpularity, one point per training image."""
        return [{"x": float(t), "y": float(p)}
                for t, p in zip(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1))]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        values = sub[TARGET].to_numpy(dtype=np.float64)
        if (values < 1).any() or (values > 100).any():
            raise FoldwiseError(f"submission {TARGET} must lie in [1, 100]")


class PawpularityLoss(torch.nn.Module):
    """``bce``: BCE with logits against Pawpularity/100; ``mse``: MSE of the raw output against it."""

    def __init__(self, kind: str = "bce"):
        super().__init__()
        if kind not in ("bce", "mse"):
            raise FoldwiseError(f"petfinder.loss must be bce or mse, got {kind!r}")
        self.kind = kind

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float() / 100.0
        if self.kind == "bce":
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
        return torch.nn.functional.mse_loss(logits, targets)


# ---- table helpers ------------------------------------------------------------------------------
def sturges_bins(values: np.ndarray) -> np.ndarray:
    """Equal-width bin (0..k-1) of each value, k = floor(1 + log2(n)) (Sturges' rule)."""
    values = np.asarray(values, dtype=np.float64)
    k = int(math.floor(1 + math.log2(len(values))))
    return pd.cut(values, bins=k, labels=False).astype(int)


def merge_sparse_bins(bins: np.ndarray, min_count: int) -> np.ndarray:
    """Fold bins holding fewer than ``min_count`` samples into their nearest neighbour bin.

    The fold splitter needs every stratum to have at least one sample per fold; with small data the
    sparse top (or bottom) bins of the Sturges grid would otherwise stop the split.
    """
    bins = np.asarray(bins).copy()
    while True:
        labels, counts = np.unique(bins, return_counts=True)
        if len(labels) <= 1 or counts.min() >= min_count:
            return bins
        j = int(np.argmin(counts))
        target = labels[j + 1] if j == 0 else labels[j - 1] if j == len(labels) - 1 else (
            labels[j - 1] if counts[j - 1] <= counts[j + 1] else labels[j + 1])
        bins[bins == labels[j]] = target


def _check_ids(ids: pd.Series, path: Path) -> None:
    frame = ids.to_frame("Id")
    check_filled(frame, path, ["Id"])
    check_unique(frame, path, "Id")


def _check_flags(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in FLAGS:
        df[col] = check_numbers(df, path, col, lo=0, hi=1, integer=True, key="Id").astype(int)
    return df


# ---- synthetic generator ------------------------------------------------------------------------
def synthetic_flags(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """The 12 flags with the real data's rates; Eyes needs a face and Blur = 1 forces Eyes = 0."""
    draws = {name: (rng.random(n) < rate).astype(int) for name, rate in FLAG_RATES.items()}
    draws["Eyes"] = ((rng.random(n) < EYES_GIVEN_FACE) & (draws["Face"] == 1) & (draws["Blur"] == 0)).astype(int)
    return pd.DataFrame({name: draws[name] for name in FLAGS})


def synthetic_score(rng: np.random.Generator, flags: pd.DataFrame, tone: np.ndarray, strength: float) -> np.ndarray:
    """Integer Pawpularity in 1-100: right-skewed, mean ~38, sd ~20.6.

    A latent mixes the fur tone (weight IMAGE_WEIGHT * strength), the weak flag effects and noise;
    it is standardised and pushed through a log-normal shape for the right skew.
    """
    effect = sum(FLAG_EFFECTS[c] * flags[c].to_numpy() for c in FLAGS) / TARGET_STD
    noise = rng.standard_normal(len(tone)) * math.sqrt(1 - IMAGE_WEIGHT**2)
    latent = IMAGE_WEIGHT * strength * np.asarray(tone) + effect + noise
    centre = sum(FLAG_EFFECTS[c] * FLAG_RATES.get(c, 0.7) for c in FLAGS) / TARGET_STD
    spread = math.sqrt((IMAGE_WEIGHT * strength) ** 2 + 1 - IMAGE_WEIGHT**2 + 0.0045)
    z = (latent - centre) / spread
    s2 = SKEW_SIGMA**2
    skewed = (np.exp(SKEW_SIGMA * z) - math.exp(s2 / 2)) / math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return np.clip(np.rint(SCORE_LOC + SCORE_SCALE * skewed), 1, 100).astype(int)


def render_photo(rng: np.random.Generator, flags: dict, tone: float) -> Image.Image:
    """A small JPEG-ready RGB photo of one or more cartoon pets whose look follows ``flags``.

    ``tone`` in (0, 1) sets the fur colour, the property behind the score.
    """
    long_side = int(rng.integers(160, 401))
    aspect = float(rng.uniform(0.6, 1.6))
    w, h = (long_side, max(100, int(long_side / aspect))) if aspect >= 1 else (max(100, int(long_side * aspect)), long_side)
    fur = tuple(int(c) for c in np.clip(FUR_DARK + (FUR_BRIGHT - FUR_DARK) * tone + rng.normal(0, 6, 3), 0, 255))
    if flags["Collage"]:
        canvas = Image.new("RGB", (w, h), (255, 255, 255))
        cols, rows = (2, 1) if rng.random() < 0.5 else (2, 2)
        pw, ph = w // cols, h // rows
        for r in range(rows):
            for c in range(cols):
                panel = _scene(rng, pw - 4, ph - 4, flags, fur)
                canvas.paste(panel, (c * pw + 2, r * ph + 2))
    else:
        canvas = _scene(rng, w, h, flags, fur)
    draw = ImageDraw.Draw(canvas)
    if flags["Occlusion"]:  # cage or fence bars in front of everything
        n_bars = int(rng.integers(3, 7))
        bar_w = max(4, int(0.05 * w))
        shade = tuple(int(v) for v in rng.integers(20, 90, 3))
        for x in np.linspace(0, w, n_bars + 2)[1:-1]:
            draw.rectangle([int(x) - bar_w // 2, 0, int(x) + bar_w // 2, h], fill=shade)
    if flags["Info"]:  # adoption banner with text
        size = max(12, h // 9)
        top = 0 if rng.random() < 0.5 else h - int(size * 1.6)
        draw.rectangle([0, top, w, top + int(size * 1.6)], fill=tuple(int(v) for v in rng.integers(150, 256, 3)))
        font = ImageFont.load_default(size=size)
        draw.text((int(0.05 * w), top + size // 4), str(rng.choice(WORDS)), fill=(10, 10, 10), font=font)
    if flags["Blur"]:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(2.5, 5.0))))
    gain = rng.uniform(0.9, 1.1)  # exposure
    arr = np.asarray(canvas, dtype=np.float32) * gain + rng.normal(0, 4, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _scene(rng: np.random.Generator, w: int, h: int, flags: dict, fur: tuple) -> Image.Image:
    """Background, furniture, optional human hand and the pet(s) for one panel."""
    a, b = (np.array(BACKGROUNDS[i], dtype=np.float32) for i in rng.choice(len(BACKGROUNDS), 2, replace=False))
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(a * (1 - ramp) + b * ramp, (h, w, 3))
    img = Image.fromarray(np.clip(bg + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):  # furniture, toys
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(10, w // 2 + 11), y0 + rng.integers(10, h // 2 + 11)
        colour = tuple(int(v) for v in rng.integers(40, 220, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x0, y0, x1, y1], fill=colour)
    if flags["Subject Focus"]:  # shallow depth of field: blurred background, sharp pet
        img = img.filter(ImageFilter.GaussianBlur(radius=4))
        draw = ImageDraw.Draw(img)
    short = min(w, h)
    if flags["Group"]:
        n_pets, scale = int(rng.integers(2, 5)), (0.16, 0.26)
    else:
        n_pets, scale = 1, (0.42, 0.55) if flags["Near"] else (0.14, 0.24)
    for _ in range(n_pets):
        s = float(rng.uniform(*scale)) * short
        cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.35 * h, 0.65 * h)
        if flags["Group"]:
            cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.2 * h, 0.8 * h)
        sib = tuple(int(np.clip(c + rng.normal(0, 8), 0, 255)) for c in fur)
        _draw_pet(draw, rng, cx, cy, s, sib, flags)
    if flags["Human"]:  # an arm reaching in from an edge
        skin = SKIN[int(rng.integers(len(SKIN)))]
        y = rng.uniform(0.2 * h, 0.9 * h)
        arm_w = max(6, int(0.08 * short))
        x_end = rng.uniform(0.25 * w, 0.5 * w)
        draw.line([(0, y), (x_end, y - 0.1 * h)], fill=skin, width=arm_w)
        draw.ellipse([x_end - arm_w, y - 0.1 * h - arm_w, x_end + arm_w, y - 0.1 * h + arm_w], fill=skin)
    return img


def _draw_pet(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, s: float,
              fur: tuple, flags: dict) -> None:
    """A cartoon pet of size ``s`` (about its body length) centred at (cx, cy)."""
    dark = tuple(int(c * 0.7) for c in fur)
    facing = 1 if rng.random() < 0.5 else -1
    if flags["Action"]:  # motion streaks behind a leaping pet
        for k in range(3):
            yy = cy - 0.2 * s + k * 0.2 * s
            draw.line([(cx - facing * 1.4 * s, yy), (cx - facing * 0.8 * s, yy)], fill=(235, 235, 235), width=max(2, int(s / 25)))
    leg_w = 0.09 * s
    lift = 0.12 * s if flags["Action"] else 0.0
    for dx in (-0.35, -0.2, 0.2, 0.35):
        x = cx + dx * s
        draw.rectangle([x - leg_w / 2, cy + 0.1 * s - lift, x + leg_w / 2, cy + 0.45 * s - lift], fill=dark)
    draw.ellipse([cx - 0.5 * s, cy - 0.2 * s, cx + 0.5 * s, cy + 0.25 * s], fill=fur)  # body
    draw.line([(cx - facing * 0.45 * s, cy - 0.05 * s), (cx - facing * 0.75 * s, cy - 0.35 * s)], fill=dark,
              width=max(2, int(0.07 * s)))  # tail
    for _ in range(int(rng.integers(0, 3))):  # patches
        px, py = cx + rng.uniform(-0.3, 0.3) * s, cy + rng.uniform(-0.1, 0.1) * s
        r = rng.uniform(0.05, 0.12) * s
        draw.ellipse([px - r, py - r, px + r, py + r], fill=dark)
    hx, hy, hr = cx + facing * 0.45 * s, cy - 0.3 * s, 0.27 * s
    for ex in (-0.6, 0.6):  # ears
        draw.polygon([(hx + ex * hr, hy - 0.5 * hr), (hx + ex * 0.9 * hr, hy - 1.35 * hr), (hx + ex * 0.2 * hr, hy - 0.8 * hr)], fill=dark)
    draw.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=fur)  # head
    if flags["Accessory"]:  # collar
        colour = [(200, 30, 40), (30, 60, 200), (150, 40, 170)][int(rng.integers(3))]
        draw.line([(hx - 0.8 * hr, hy + 0.95 * hr), (hx + 0.8 * hr, hy + 0.95 * hr)], fill=colour, width=max(3, int(0.25 * hr)))
    if flags["Face"]:
        draw.ellipse([hx - 0.15 * hr, hy + 0.2 * hr, hx + 0.15 * hr, hy + 0.42 * hr], fill=(25, 20, 20))  # nose
        draw.line([(hx - 0.25 * hr, hy + 0.6 * hr), (hx + 0.25 * hr, hy + 0.6 * hr)], fill=(40, 25, 25), width=max(1, int(hr / 12)))
    if flags["Eyes"]:
        for ex in (-0.4, 0.4):
            x, y, r = hx + ex * hr, hy - 0.15 * hr, 0.2 * hr
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 250))
            draw.ellipse([x - r / 2, y - r / 2, x + r / 2, y + r / 2], fill=(10, 10, 10))


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


TASK = PetfinderTask()
