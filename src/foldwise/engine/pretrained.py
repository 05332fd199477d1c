"""Pretrained weights, offline first: resolved once into one safetensors file that training loads.

Sources, in order: ``train.weights`` (a local safetensors or torch checkpoint), else with
``train.pretrained: true`` timm's own weights for ``model`` (``arch`` for its default tag or
``arch.tag``) from the Hugging Face hub cache timm uses (``$HF_HOME/hub``, default
``~/.cache/huggingface/hub``). Nothing is downloaded unless ``HF_HUB_OFFLINE=0`` is set: foldwise
treats an unset ``HF_HUB_OFFLINE`` as 1.

Either way the weights are matched onto ``model``'s own tensor names (by name, else by order;
weights_match.py), and a load that would leave a backbone tensor at its random initialisation is
refused unless ``train.weights_partial``. The resolved weights are written as
``<dir>/weights.safetensors`` (the cache's bytes when they need no renaming, else the matched
tensors under ``model``'s names) beside ``<dir>/source.json``: where they came from, their sha256,
how many backbone tensors matched and how, and the mean/std ``model``'s timm config says its
weights expect. With neither option set only ``source.json`` says ``{"pretrained": false}``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_dir
from ..core.errors import FoldwiseError
from ..core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from .weights_match import SKIPPED_SUFFIX, Matched, layout_note, match, read_checkpoint, reference

WEIGHTS_FILE = "weights.safetensors"
SOURCE_FILE = "source.json"


def check_weights_file(weights: str, source: str = "params.yaml") -> None:
    """``train.weights`` names a local file that exists (or is empty)."""
    if weights and not Path(weights).is_file():
        raise FoldwiseError(f"{source}: 'train.weights' must be a local weights file that exists (or \"\"), "
                            f"got {weights!r}")


def hub_offline() -> bool:
    """True unless the user opted in to downloads with HF_HUB_OFFLINE=0 (or false/no/off)."""
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "off")


def hub_cache_dir() -> Path:
    """The hub cache timm reads, from the environment at call time: $HF_HUB_CACHE, else $HF_HOME/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def pretrained_cfg(name: str) -> Any:
    """timm's pretrained config of ``name`` (``arch`` or ``arch.tag``); FoldwiseError for a tag timm lacks."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:
        raise FoldwiseError(f"model: {name}: {str(exc).splitlines()[0]}") from None
    if cfg is None:
        raise FoldwiseError(f"model: {name} has no pretrained weights in timm; set train.weights: FILE")
    return cfg


def _split_tag(hf_hub_id: str) -> tuple[str, str]:
    """'timm/resnet10t.c3_in1k' -> ('resnet10t', 'c3_in1k')."""
    repo_name = hf_hub_id.split("/", 1)[-1].split("@", 1)[0]
    arch, _, tag = repo_name.partition(".")
    return arch, tag


def hub_weights_path(name: str) -> tuple[Path, dict]:
    """Path of ``name``'s weights file in the hub cache (fetched only when not offline) and a
    description of it; FoldwiseError naming model, tag and the two ways to provide them if absent."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    cfg = pretrained_cfg(name)
    if not cfg.hf_hub_id:
        raise FoldwiseError(f"model: {name}: timm has no Hugging Face hub copy of its weights; set train.weights: FILE")
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    arch, tag = _split_tag(cfg.hf_hub_id)
    offline, cache = hub_offline(), hub_cache_dir()
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for filename in filenames:
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision or None, cache_dir=cache,
                                        local_files_only=offline))
        except (LocalEntryNotFoundError, EntryNotFoundError):
            continue
        except (HfHubHTTPError, OSError) as exc:
            raise FoldwiseError(f"model {arch} tag {tag}: fetching {repo_id} failed: {str(exc).splitlines()[0]}") from None
        revision_used = path.parent.name if path.parent.parent.name == "snapshots" else (revision or "")
        return path, {"source": f"hf-hub:{repo_id}", "file": filename, "revision": revision_used}
    where = f"not in the Hugging Face cache {cache}" + (" (HF_HUB_OFFLINE=1)" if offline else " nor on the hub")
    raise FoldwiseError(
        f"train.pretrained: weights for model {arch} tag {tag} are {where}; provide them either as a "
        f"populated cache (models--timm--{arch}.{tag} under $HF_HOME/hub, e.g. fetched once with "
        f"HF_HUB_OFFLINE=0 dvc repro pretrained) or as a local file with train.weights: FILE"
    )


def resolve_weights(source: Path, model: str, what: str, partial: bool) -> tuple[dict, Matched, str]:
    """(the checkpoint's raw tensors, them matched onto ``model``'s names, the entry they came from)."""
    checkpoint, entry = read_checkpoint(source, what)
    shapes, classifier = reference(model)
    matched = match(checkpoint, shapes, classifier, f"{what}: {source}", model, partial)
    matched.note = layout_note(checkpoint, model)
    return checkpoint, matched, entry


def write_pretrained(out: Path, model: str, pretrained: bool, weights: str, partial: bool = False) -> dict:
    """Resolve the weights for ``model`` and write ``out/`` (see module docstring); returns source.json.

    Every backbone tensor of ``model`` must be found in the weights (by name, else by order; see
    weights_match.py), else FoldwiseError naming the first one missing, unless ``partial``.
    """
    info: dict[str, Any] = {"pretrained": bool(pretrained or weights), "model": model}
    if not info["pretrained"]:
        with atomic_dir(out) as tmp:
            (tmp / SOURCE_FILE).write_text(json.dumps(info, indent=1) + "\n")
        return info
    try:
        cfg = pretrained_cfg(model)
        info["mean"], info["std"] = list(cfg.mean), list(cfg.std)
    except FoldwiseError:
        if not weights:
            raise
        info["mean"], info["std"] = list(IMAGENET_MEAN), list(IMAGENET_STD)  # nothing better known
    if weights:
        source = Path(weights).expanduser()
        if not source.is_file():
            raise FoldwiseError(f"train.weights: file not found: {weights}")
        info["source"] = f"file:{source.resolve()}"
        _, matched, entry = resolve_weights(source, model, "train.weights", partial)
        unchanged = False
    else:
        source, found = hub_weights_path(model)
        info.update(found)
        checkpoint, matched, entry = resolve_weights(source, model, "train.pretrained", partial)
        # the cache's bytes, unchanged, when they already are the model's tensors under its names
        unchanged = source.suffix == ".safetensors" and not entry and _same_tensors(checkpoint, matched.state)
    if entry:
        info["checkpoint_entry"] = entry
    info.update(matched.record())
    with atomic_dir(out) as tmp:
        if unchanged:
            shutil.copyfile(source, tmp / WEIGHTS_FILE)
        else:
            _save_state_dict(matched.state, tmp / WEIGHTS_FILE)
        info["sha256"] = _sha256(tmp / WEIGHTS_FILE)
        (tmp / SOURCE_FILE).write_text(json.dumps(info, indent=1) + "\n")
    return info


def _same_tensors(checkpoint: dict, state: dict) -> bool:
    """True when ``state`` is ``checkpoint`` under the same names (num_batches_tracked aside)."""
    kept = {k for k in checkpoint if not k.endswith(SKIPPED_SUFFIX)}
    return kept == set(state) and all(checkpoint[k] is state[k] for k in state)


def _save_state_dict(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_pretrained(folder: Path | None) -> dict:
    """source.json of a ``pretrained`` output (``{"pretrained": false}`` for None); checks the weights exist."""
    if folder is None:
        return {"pretrained": False}
    path = folder / SOURCE_FILE
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run the pretrained stage")
    info = json.loads(path.read_text())
    if info.get("pretrained") and not (folder / WEIGHTS_FILE).is_file():
        raise FoldwiseError(f"{folder / WEIGHTS_FILE}: missing; run the pretrained stage")
    return info


def input_affine(info: dict, image_scale: str, in_chans: int) -> tuple[list[float], list[float]] | None:
    """Per-channel (scale, shift) taking the task's images onto the scale the weights expect, or None.

    Only "imagenet" images (RGB normalised with ImageNet's mean/std) are remapped, and only when the
    weights expect another mean/std (e.g. ViT augreg: 0.5/0.5): x' = (x * s_in + m_in - mean) / std.
    Per-image standardised images (SETI, HMS) are left alone: they already have mean 0 and std 1.
    For in_chans != 3 the weights' mean/std are averaged over RGB, as timm sums or repeats the
    first conv's RGB kernels for such inputs.
    """
    if not info.get("pretrained") or image_scale != "imagenet":
        return None
    mean, std = np.asarray(info["mean"], dtype=np.float64), np.asarray(info["std"], dtype=np.float64)
    if np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD):
        return None
    m_in, s_in = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    if in_chans != 3 or len(mean) != 3:
        mean, std = np.full(in_chans, mean.mean()), np.full(in_chans, std.mean())
        m_in, s_in = np.full(in_chans, m_in.mean()), np.full(in_chans, s_in.mean())
    return (s_in / std).tolist(), ((m_in - mean) / std).tolist()
