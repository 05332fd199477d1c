"""Image-folder competitions: decode a photo of any size and mode into a square, normalised RGB array.

Shared by every task whose samples are ordinary image files (PetFinder, mask, the generic image
task): one reader, one resize rule, one error line per bad file. Per-row CSV checks live in
``tables.py``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ...core import imagenet
from ...core.errors import FoldwiseError

IMAGENET_MEAN = np.array(imagenet.IMAGENET_MEAN, dtype=np.float32)
IMAGENET_STD = np.array(imagenet.IMAGENET_STD, dtype=np.float32)
RESIZES = ("squash", "crop")  # squash: whole image to a square; crop: centre square, then resize
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def load_image(path: Path, what: str, img_size: int, resize: str = "squash") -> np.ndarray:
    """Decode one image -> float32 (img_size, img_size, 3), RGB, ImageNet-normalised.

    EXIF orientation is applied; grayscale, CMYK, palette and alpha images become RGB. ``what``
    names the sample in error lines (e.g. ``"Id 'abc'"``).
    """
    rgb = read_rgb(path, what, img_size)
    return normalise(resize_square(rgb, img_size, resize))


def read_rgb(path: Path, what: str, draft_size: int | None = None) -> Image.Image:
    """The image at ``path`` as an RGB PIL image, upright per EXIF. ``draft_size`` lets big JPEGs
    decode at a reduced scale that is still at least that size (a fast DCT downscale)."""
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing image for {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, corrupt EXIF
            with Image.open(path) as img:
                if img.format == "JPEG" and draft_size:
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FoldwiseError(f"{path}: not a readable image for {what} ({str(exc).splitlines()[0]})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: 16-bit and float grayscale scaled to 8 bit, transparency onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # high bit depth grayscale: scale to 8 bit
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.max() > 0 else 1.0
        return Image.fromarray((arr / top * 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def resize_square(img: Image.Image, img_size: int, resize: str = "squash") -> Image.Image:
    """``squash`` resizes the whole image to (img_size, img_size); ``crop`` takes the centre square first."""
    if resize not in RESIZES:
        raise FoldwiseError(f"resize must be one of {', '.join(RESIZES)}, got {resize!r}")
    if resize == "crop":
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    return img.resize((img_size, img_size), Image.Resampling.BILINEAR)


def normalise(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 (H, W, 3), ImageNet mean/std normalised."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return ((arr - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def raw_image_sizes(paths: Iterable[Path]) -> Iterator[tuple[int, int, int]]:
    """(height, width, bands) of each image file, read from its header (pixels are not decoded)."""
    for path in paths:
        with Image.open(path) as img:
            yield img.height, img.width, len(img.getbands())


def is_hidden(path: Path) -> bool:
    """macOS resource forks (``._name``) and other dot files that archives carry beside real images."""
    return path.name.startswith(".")


def image_files(folder: Path) -> list[Path]:
    """The visible image files directly in ``folder`` (by suffix, any case), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not is_hidden(p) and p.suffix.lower() in IMAGE_SUFFIXES)


def images_by_stem(folder: Path) -> dict[str, Path]:
    """The visible images in ``folder`` keyed by file stem (``mask1`` for ``mask1.jpeg``); two images
    with one stem (``a.jpg`` and ``a.png``) are an error, since either could be the sample."""
    by_stem: dict[str, Path] = {}
    for path in image_files(folder):
        if path.stem in by_stem:
            raise FoldwiseError(f"{folder}: two images named {path.stem} ({by_stem[path.stem].name}, {path.name})")
        by_stem[path.stem] = path
    return by_stem


def require_image_files(paths: Iterable[Path | None], csv_path: Path, column: str, values: Iterable) -> None:
    """Stop at the first row whose image file is missing: names the CSV, its row, column and value.

    ``paths`` (None for a file not found) and ``values`` (what the CSV's ``column`` holds) run
    parallel to the CSV's data rows.
    """
    for i, (path, value) in enumerate(zip(paths, values)):
        if path is None or not Path(path).is_file():
            shown = "" if path is None else f" ({path})"
            raise FoldwiseError(f"{csv_path}: {column} {value!r} in row {i + 2} has no image file{shown}")
