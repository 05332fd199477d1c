"""PetFinder's simulator: cartoon pets whose fur tone drives a skewed, noisy Pawpularity.

The rendered pet's visible properties follow the flags; the score is driven mostly by the fur tone
(dark grey-brown to bright golden), weakly by the flags, and heavily by noise, so the flags alone
barely beat predicting the mean while an image model can.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..common.synthetic import unique_hex_ids
from .task import FLAGS, TARGET

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
FUR_NOISE_SD = 6.0  # per-photo colour noise of the fur, per channel
EXPOSURE_GAIN = (0.9, 1.1)  # per-photo gain on every pixel
SPLIT_STREAMS = {"train": 1, "test": 2}  # a split's random stream: its draws come from rng((seed, stream))
BACKGROUNDS = [(96, 140, 70), (120, 160, 200), (150, 150, 150), (200, 190, 170), (170, 120, 90),
               (90, 90, 110), (210, 210, 215), (140, 110, 150)]
SKIN = [(241, 194, 150), (224, 172, 105), (198, 134, 66), (141, 85, 36)]
WORDS = ["ADOPT ME", "FOR ADOPTION", "CALL 012-3456", "PLS SHARE", "FREE", "PETFINDER", "URGENT"]


def generate(root: Path, n_train: int, n_test: int, seed: int, strength: float,
             sample_submission: str = "sample_submission.csv") -> None:
    """Write ``n_train`` train and ``n_test`` test photos with their flags (and train scores) in the Kaggle
    layout under ``root`` (deterministic in seed)."""
    root = Path(root)
    ids = unique_hex_ids(np.random.default_rng((seed, 0)), n_train + n_test, ID_HEX_DIGITS)
    for split, split_ids in (("train", ids[:n_train]), ("test", ids[n_train:])):
        stream = SPLIT_STREAMS[split]
        flags, tone, score = draw_labels(np.random.default_rng((seed, stream)), len(split_ids), strength)
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
            pd.DataFrame({"Id": split_ids, TARGET: TARGET_MEAN}).to_csv(root / sample_submission, index=False)


def draw_labels(rng: np.random.Generator, n: int, strength: float) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One split's flags, hidden fur tones z (n,) and integer scores (n,), drawn from ``rng`` in this order."""
    flags = synthetic_flags(rng, n)
    tone = rng.standard_normal(n)  # the image property behind the score
    return flags, tone, synthetic_score(rng, flags, tone, strength)


def fur_colour(shade: np.ndarray | float) -> np.ndarray:
    """Mean RGB (..., 3) of the fur at ``shade`` = Phi(z) in (0, 1), before noise and exposure."""
    return FUR_DARK + (FUR_BRIGHT - FUR_DARK) * shade


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
    fur = tuple(int(c) for c in np.clip(fur_colour(tone) + rng.normal(0, FUR_NOISE_SD, 3), 0, 255))
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
    gain = rng.uniform(*EXPOSURE_GAIN)
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

