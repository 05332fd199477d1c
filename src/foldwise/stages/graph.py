"""dvc.yaml's ``params:`` lists, generated from the ``PARAMS`` each stage module declares.

    python -m foldwise.stages.graph --write   # rewrite the lists in dvc.yaml (comments elsewhere kept)
    python -m foldwise.stages.graph --check   # exit 1 naming the first stage whose list is stale

The declarations are read from the stage files' source (``PARAMS = (...)``), so neither this tool nor
its test imports torch.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

STAGES_DIR = Path(__file__).resolve().parent
TASK_GROUP = "${task}"  # as stages/params.py's TASK_GROUP
DVC_YAML = "dvc.yaml"


def declared_params(stage: str, stages_dir: Path = STAGES_DIR) -> list[str]:
    """The ``PARAMS`` tuple of ``stages/<stage>.py``: string keys, ``TASK_GROUP`` as ``${task}``."""
    tree = ast.parse((stages_dir / f"{stage}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in node.targets):
            keys = []
            for item in node.value.elts:
                if isinstance(item, ast.Name) and item.id == "TASK_GROUP":
                    keys.append(TASK_GROUP)
                else:
                    keys.append(ast.literal_eval(item))
            return keys
    raise ValueError(f"{stages_dir / f'{stage}.py'}: declares no PARAMS")


def _stage_body(stage: dict) -> dict:
    return stage.get("do", stage)  # a foreach stage (train) keeps its definition under do:


def stale_stages(dvc_yaml: str | Path = DVC_YAML) -> list[tuple[str, list, list]]:
    """(stage, dvc.yaml's list, declared list) for every stage whose ``params:`` differ."""
    from ruamel.yaml import YAML

    stages = YAML(typ="safe").load(Path(dvc_yaml).read_text())["stages"]
    return [(name, _stage_body(stage).get("params", []), declared_params(name))
            for name, stage in stages.items() if _stage_body(stage).get("params", []) != declared_params(name)]


def write(dvc_yaml: str | Path = DVC_YAML) -> list[str]:
    """Rewrite each stage's ``params:`` list from its declaration; the names of the stages changed."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedSeq

    yaml = YAML()  # round trip: key order and comments outside the lists stay
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = Path(dvc_yaml)
    doc = yaml.load(path.read_text())
    changed = []
    for name, stage in doc["stages"].items():
        body, keys = _stage_body(stage), declared_params(name)
        if list(body.get("params", [])) != keys:
            body["params"] = CommentedSeq(keys)
            changed.append(name)
    if changed:
        with path.open("w") as out:
            yaml.dump(doc, out)
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's params lists")
    mode.add_argument("--check", action="store_true", help="exit 1 if a params list is stale")
    parser.add_argument("--dvc-yaml", default=DVC_YAML)
    args = parser.parse_args(argv)
    if args.write:
        changed = write(args.dvc_yaml)
        print(f"{args.dvc_yaml}: params of {', '.join(changed)} rewritten" if changed else f"{args.dvc_yaml}: up to date")
        return
    stale = stale_stages(args.dvc_yaml)
    for name, listed, declared in stale:
        print(f"{args.dvc_yaml}: stage {name} lists params {listed}, its PARAMS declare {declared}; "
              "run `python -m foldwise.stages.graph --write`", file=sys.stderr)
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
