"""Mask's simulator: drawn faces of synthetic people, seven photos each, in the competition's layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..common.synthetic import unique_hex_ids
from .task import EVAL_IMAGES, GENDERS, HEIGHT, INFO_CSV, PHOTOS, TRAIN_CSV, TRAIN_IMAGES, WIDTH

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

