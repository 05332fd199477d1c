"""Checkpoints of any layout onto a timm model's names: unwrap, match by name, else by order.

A checkpoint is read without unpickling code (``torch.load(weights_only=True)`` or safetensors),
then unwrapped: the tensors under ``state_dict`` / ``model`` / ``module`` / ``net`` (Lightning,
timm's train script, most repositories), else under an EMA entry (``state_dict_ema``, ``model_ema``,
``ema``) only when it is the checkpoint's only copy: the plain weights are the ones that were
trained, so they win where both are saved. ``source.json`` names the entry used.

Matching against the model's own state dict (``num_batches_tracked`` left out on both sides):

1. **By name**, after the one leading key prefix that makes the most names match (``module.``
   from DDP, ``model.`` from Lightning, ``_orig_mod.`` from torch.compile, ``backbone.``, …).
2. Only if some backbone tensor is not found so, **by order**: the checkpoint's tensors taken in
   the order they were saved, paired with the model's, and only when every pair has the same shape
   (no reshaping; the classifier pair may differ, it is then left out). efficientnet_pytorch and
   torchvision save the same networks as timm in the same order under other names.
3. Else the load is partial: refused unless ``train.weights_partial: true`` (then only the
   tensors that match by name are kept), and always refused when nothing matches.

The classifier (timm's ``pretrained_cfg["classifier"]``) is kept when its shape matches the
model's default head, else left out; training builds the model without it anyway.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import FoldwiseError

PLAIN_ENTRIES = ("state_dict", "model", "module", "net", "network", "model_state_dict")
EMA_ENTRIES = ("state_dict_ema", "model_ema", "ema", "ema_state_dict")
SKIPPED_SUFFIX = "num_batches_tracked"


@dataclass
class Matched:
    """The checkpoint's tensors under the model's names and how they were found."""

    state: dict[str, torch.Tensor]  # model name -> tensor (backbone matches + classifier if kept)
    by: str  # "name" or "order"
    matched: int  # backbone tensors matched
    backbone: int  # backbone tensors the model has
    classifier: str  # "kept", "left out (shape ...)" or "absent"
    prefix: str = ""  # key prefix stripped for the name match
    first_miss: str = ""  # the first backbone tensor not matched, when partial
    note: str = ""  # a hint that another timm model computes what the checkpoint was trained for

    def record(self) -> dict:
        """The fields source.json keeps."""
        out = {"matched_by": self.by, "matched": self.matched, "backbone_tensors": self.backbone,
               "classifier": self.classifier}
        if self.prefix:
            out["key_prefix"] = self.prefix
        if self.first_miss:
            out["first_unmatched"] = self.first_miss
        if self.note:
            out["note"] = self.note
        return out


def read_checkpoint(path: Path, what: str) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors in saved order, the entry they came from: "" for a bare state dict) of ``path``.

    ``what`` names the param in error lines (``train.weights``). Only tensors are read: a pickle
    holding Python objects other than containers, numbers and strings is refused in one line.
    """
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            return load_file(str(path)), ""
        import argparse

        with torch.serialization.safe_globals([argparse.Namespace]):  # timm's train script saves its args
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a corrupt or unsafe file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise FoldwiseError(
                f"{what}: {path}: holds Python objects besides tensors, which foldwise does not unpickle "
                f"({_unsupported_global(str(exc))}); save its state dict alone, e.g. "
                f"torch.save(torch.load(FILE, weights_only=False)['state_dict'], 'weights.pth')") from None
        raise FoldwiseError(f"{what}: {path}: not a readable checkpoint ({first})") from None
    return unwrap(obj, f"{what}: {path}")


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length, then '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    return path.suffix == ".safetensors" or (len(head) == 9 and head[8:9] == b"{")


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip().rstrip(".")
    return "see torch.load's weights_only"


def unwrap(obj, what: str) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a (possibly nested) checkpoint dict and the path of entries taken ("a/b")."""
    entries = []
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise FoldwiseError(f"{what}: not a state dict or checkpoint dict (a {type(obj).__name__})")
        inner = _entry(obj)
        if inner is None:
            break
        entries.append(inner)
        obj = obj[inner]
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6]))
        raise FoldwiseError(f"{what}: holds no tensors (keys: {keys})")
    return tensors, "/".join(entries)


def _entry(obj: Mapping) -> str | None:
    """The key to descend into: a plain weights entry, else an EMA one, else the only dict of tensors."""
    for key in PLAIN_ENTRIES + EMA_ENTRIES:
        if isinstance(obj.get(key), Mapping) and obj[key]:
            return key
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    nested = [k for k, v in obj.items() if isinstance(v, Mapping) and any(isinstance(t, torch.Tensor) for t in v.values())]
    return nested[0] if len(nested) == 1 else None


def reference(model: str) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """(name -> shape of ``model``'s state dict in order, without num_batches_tracked; its
    classifier's names) for timm's ``model`` (``arch`` or ``arch.tag``) with its pretrained head.
    Built on the meta device: no memory, no initialisation."""
    import timm

    try:
        with torch.device("meta"):
            net = timm.create_model(model, pretrained=False)
    except (RuntimeError, NotImplementedError):  # a constructor that computes on its tensors
        net = timm.create_model(model, pretrained=False)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith(SKIPPED_SUFFIX)}
    heads = net.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    classifier = {k for k in shapes if any(k.startswith(h + ".") for h in heads)}
    return shapes, classifier


def match(checkpoint: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]], classifier: set[str],
          what: str, model: str, partial: bool = False) -> Matched:
    """Map ``checkpoint`` onto the names of ``shapes`` (see the module docstring); FoldwiseError in
    one line naming the first unmatched tensor when the load would be partial and not allowed."""
    ckpt = {k: v for k, v in checkpoint.items() if not k.endswith(SKIPPED_SUFFIX)}
    backbone = [k for k in shapes if k not in classifier]
    prefix = _best_prefix(ckpt, backbone)
    by_name = [k for k in backbone if _fits(ckpt.get(prefix + k), shapes[k])]
    if len(by_name) == len(backbone):
        return _named(ckpt, prefix, by_name, shapes, classifier, len(backbone))
    ordered, why_not = _by_order(ckpt, shapes, classifier)
    if ordered is not None:
        matched = sum(k not in classifier for k in ordered)
        if any(k in ordered for k in classifier):
            head = "kept"
        else:
            head = "absent" if len(ckpt) == len(backbone) else "left out (another shape)"
        return Matched(ordered, "order", matched, len(backbone), head)
    found = set(by_name)
    miss = next(k for k in backbone if k not in found)
    other = ckpt.get(prefix + miss)
    miss_text = f"{miss} {_shape(shapes[miss])}: " + (
        f"the checkpoint's {prefix + miss} is {_shape(other.shape)}" if other is not None else "not in the checkpoint")
    if not by_name:
        raise FoldwiseError(f"{what}: no tensor matches model {model}: by name none of its {len(backbone)} "
                            f"backbone tensors (first: {miss_text}); by order {why_not}")
    if not partial:
        raise FoldwiseError(f"{what}: only {len(by_name)} of {model}'s {len(backbone)} backbone tensors match "
                            f"by name (first unmatched: {miss_text}) and not by order ({why_not}); set "
                            f"train.weights_partial: true to start from those {len(by_name)} only")
    named = _named(ckpt, prefix, by_name, shapes, classifier, len(backbone))
    named.first_miss = miss_text
    return named


def _named(ckpt: dict, prefix: str, names: list[str], shapes: dict, classifier: set[str], backbone: int) -> Matched:
    """The tensors ``names`` found under ``prefix``, with the classifier when all of it has the model's shape."""
    state = {k: ckpt[prefix + k] for k in names}
    present = [k for k in sorted(classifier) if prefix + k in ckpt]
    if not present:
        head = "absent"
    elif len(present) == len(classifier) and all(_fits(ckpt[prefix + k], shapes[k]) for k in classifier):
        head = "kept"
        state |= {k: ckpt[prefix + k] for k in classifier}
    else:
        k = next((k for k in present if not _fits(ckpt[prefix + k], shapes[k])), present[0])
        head = f"left out ({k} is {_shape(ckpt[prefix + k].shape)}, the model's {_shape(shapes[k])})"
    return Matched(state, "name", len(names), backbone, head, prefix)


def layout_note(checkpoint: dict, model: str) -> str:
    """A hint when an efficientnet_pytorch checkpoint (a port of TensorFlow weights) goes to a timm
    EfficientNet that is not the ``tf_`` variant computing it; "" otherwise."""
    import timm

    arch = model.split(".", 1)[0]
    if "_conv_stem.weight" not in checkpoint or arch.startswith("tf_") or not timm.is_model(f"tf_{arch}"):
        return ""
    return (f"efficientnet_pytorch checkpoints are ports of TensorFlow weights, which model tf_{arch} computes "
            f"(SAME padding, BatchNorm eps 1e-3, inputs at mean/std 0.5); {model} does not")


def _fits(tensor: torch.Tensor | None, shape: tuple[int, ...]) -> bool:
    return tensor is not None and tuple(tensor.shape) == shape


def _shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _best_prefix(ckpt: dict, names: list[str]) -> str:
    """The leading ``a.b.`` of the checkpoint's keys whose removal makes the most ``names`` match
    ("" on ties): one pass over every dotted prefix of every key."""
    wanted, counts = set(names), {"": 0}
    for key in ckpt:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in wanted:
                prefix = ".".join(parts[:i]) + ("." if i else "")
                counts[prefix] = counts.get(prefix, 0) + 1
    return max(counts, key=lambda p: (counts[p], -len(p)))


def _by_order(ckpt: dict, shapes: dict, classifier: set[str]) -> tuple[dict | None, str]:
    """The checkpoint's tensors paired in order with the model's (all of them, or the model's
    without its classifier for a head-less checkpoint); (None, why) unless every pair's shapes
    agree, the classifier's excepted."""
    items = list(ckpt.items())
    full = list(shapes)
    backbone = [k for k in full if k not in classifier]
    if len(items) == len(full):
        names = full
    elif len(items) == len(backbone):
        names = backbone
    else:
        return None, (f"the checkpoint has {len(items)} tensors, the model {len(full)} "
                      f"({len(backbone)} without its classifier)")
    state = {}
    for i, (name, (key, tensor)) in enumerate(zip(names, items)):
        if tuple(tensor.shape) == shapes[name]:
            state[name] = tensor
        elif name not in classifier:
            return None, (f"tensor {i} differs: the checkpoint's {key} is {_shape(tensor.shape)}, "
                          f"the model's {name} {_shape(shapes[name])}")
    head = [k for k in classifier if k in names]
    if any(k not in state for k in head):  # a classifier of another shape: all of it left out
        state = {k: v for k, v in state.items() if k not in classifier}
    return state, ""
