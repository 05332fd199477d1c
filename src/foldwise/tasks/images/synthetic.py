"""The image task's simulator: coloured shapes on per-source backgrounds, in many modes and formats."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw


SHAPES = ("circle", "square", "triangle")  # the synthetic data's classes, images.classes' default
SHAPE_RATES = (0.45, 0.35, 0.20)
COLOURS = {(1, 0): (220, 40, 40), (0, 1): (40, 70, 220), (1, 1): (200, 40, 200), (0, 0): (40, 170, 60)}  # (red, blue)
FORMATS = (("RGB", "png"), ("RGB", "jpg"), ("RGBA", "png"), ("L", "png"), ("P", "png"), ("L", "jpg"), ("CMYK", "jpg"))
FORMAT_RATES = (0.3, 0.3, 0.1, 0.08, 0.08, 0.07, 0.07)


def generate(root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
    """train.csv, test.csv and images/<source>/<n>.<png|jpg> (see the module docstring)."""
    n_sources = max(8, (n_train + n_test) // 25)
    src_rng = np.random.default_rng((seed, 0))
    backgrounds = src_rng.integers(60, 200, (n_sources, 3))
    noise = src_rng.uniform(4, 14, n_sources)
    for split, n, stream in (("train", n_train, 1), ("test", n_test, 2)):
        rng = np.random.default_rng((seed, stream))
        rows = []
        for i in range(n):
            source = int(rng.integers(n_sources))
            shape = SHAPES[int(rng.choice(len(SHAPES), p=SHAPE_RATES))]
            red, blue = (int(v) for v in rng.integers(0, 2, 2))
            filled = bool(rng.random() < 0.5)
            size = float(rng.uniform(0.15, 0.45))
            mode, ext = FORMATS[int(rng.choice(len(FORMATS), p=FORMAT_RATES))]
            img_rng = np.random.default_rng((seed, 10 + stream, i))
            image = render(img_rng, shape, COLOURS[(red, blue)], filled, size, backgrounds[source], noise[source],
                           strength)
            rel = f"src_{source:02d}/{split}_{i:05d}.{ext}"
            path = root / "images" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            save(image, mode, path)
            rows.append({"image": rel, "shape": shape, "filled": "yes" if filled else "no", "size": round(size, 4),
                         "red": red, "blue": blue, "source": f"src_{source:02d}"})
        table = pd.DataFrame(rows)
        if split == "train":
            table.to_csv(root / "train.csv", index=False)
        else:
            table[["image", "source"]].to_csv(root / "test.csv", index=False)


def render(rng: np.random.Generator, shape: str, colour: tuple, filled: bool, size: float, background: np.ndarray,
           noise: float, strength: float) -> Image.Image:
    """One RGB picture of 40-160 px a side: a shape of ``size`` x the short side on a noisy background.
    ``strength`` < 1 fades the shape into the background."""
    w, h = (int(v) for v in rng.integers(40, 161, 2))
    img = Image.new("RGB", (w, h), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    fade = float(np.clip(strength, 0.0, 1.0))
    ink = tuple(int(b + (c - b) * fade) for c, b in zip(colour, background))
    r = size * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    box = [cx - r, cy - r, cx + r, cy + r]
    width = 0 if filled else max(2, int(r / 5))
    fill = ink if filled else None
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=ink, width=width or 1)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=ink, width=width or 1)
    else:
        points = [(cx, cy - r), (cx + r * 0.87, cy + r * 0.5), (cx - r * 0.87, cy + r * 0.5)]
        draw.polygon(points, fill=fill, outline=ink, width=width or 1)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, noise / max(strength, 0.1), (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def save(image: Image.Image, mode: str, path: Path) -> None:
    if mode == "RGBA":
        alpha = Image.new("L", image.size, 255)
        image = image.copy()
        image.putalpha(alpha)
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)

