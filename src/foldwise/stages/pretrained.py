"""Stage ``pretrained``: the weights ``train`` starts from, as a versioned file (or "none").

params: see PARAMS below (dvc.yaml's list is generated from it)
outs:   data/pretrained/ (source.json; weights.safetensors when train.pretrained or train.weights is set)

``train.weights: FILE`` wins; else ``train.pretrained: true`` takes timm's weights for ``model``
(``arch`` or ``arch.tag``) from the Hugging Face hub cache, offline unless HF_HUB_OFFLINE=0.
Every backbone tensor of ``model`` must be in them (by name, or by order when the checkpoint uses
other names), else the stage stops naming the first one missing; ``train.weights_partial: true``
starts from the tensors that match by name instead.
DVC caches the weights, so ``dvc.lock`` records their hash and ``dvc pull`` brings the same bytes.
It is also the first stage a changed ``model`` or ``img_size`` reruns, so the params check (which
builds the model once at ``img_size``) refuses a model that cannot run before any long work.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import run_stage
from ..engine.pretrained import WEIGHTS_FILE, write_pretrained
from .params import TASK_GROUP, load_stage

PARAMS = ("task", "model", "img_size", "train.pretrained", "train.weights", "train.weights_partial", TASK_GROUP)
CHECKS = ("model", "weights")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    p = load_stage("pretrained", PARAMS, CHECKS)
    info = write_pretrained(args.out, p.model, p.train.pretrained, p.train.weights, p.train.weights_partial)
    if info["pretrained"]:
        print(f"pretrained: {p.model} from {info['source']} -> {args.out / WEIGHTS_FILE} (sha256 {info['sha256'][:12]}): "
              f"{info['matched']} of {info['backbone_tensors']} backbone tensors matched by {info['matched_by']}, "
              f"classifier {info['classifier']}; inputs mean {info['mean']} std {info['std']}")
        if info.get("first_unmatched"):
            print(f"pretrained: train.weights_partial: the first tensor left at random initialisation is {info['first_unmatched']}")
        if info.get("note"):
            print(f"pretrained: note: {info['note']}")
    else:
        print(f"pretrained: none ({p.model} starts from random weights)")


if __name__ == "__main__":
    run_stage("pretrained", main)
