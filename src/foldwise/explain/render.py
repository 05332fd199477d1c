"""Annotated overlays: the input beside its saliency map, with a title band, as one PNG.

Inputs come as ``prepared.display.to_display`` shows a prepared image (float32 (H, W, 3) in [0, 1], as
the eda grids show it); each panel is enlarged (nearest) to at least ``min_side`` pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.atomic import atomic_file

BAND_LINE = 16  # pixels of title band per line of text


def overlay(display: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """grad-cam's jet overlay of ``heat`` (H, W) in [0, 1] on ``display`` (H, W, 3) -> uint8 (H, W, 3)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(display, heat, use_rgb=True, image_weight=0.5)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def compose(display: np.ndarray, heat: np.ndarray, lines: list[str], min_side: int = 192) -> Image.Image:
    """One image: title ``lines`` above [input | overlay], each panel enlarged to >= ``min_side`` px."""
    h, w = display.shape[:2]
    scale = max(1, -(-min_side // max(h, w)))
    panels = [Image.fromarray((display * 255).round().astype(np.uint8)), Image.fromarray(overlay(display, heat))]
    panels = [p.resize((w * scale, h * scale), Image.NEAREST) for p in panels]
    gap, band = 4, BAND_LINE * len(lines) + 6
    canvas = Image.new("RGB", (2 * w * scale + gap, h * scale + band), "white")
    for i, panel in enumerate(panels):
        canvas.paste(panel, (i * (w * scale + gap), band))
    draw, font = ImageDraw.Draw(canvas), _font(12)
    for i, line in enumerate(lines):
        draw.text((3, 3 + i * BAND_LINE), line, fill="black", font=font)
    return canvas


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
