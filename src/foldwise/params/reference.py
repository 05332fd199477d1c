"""The params declarations as files: a JSON Schema for editors and the docs' params reference.

    python -m foldwise.params.reference --write   # params.schema.json and docs/reference/params.md

Editors validate and complete params.yaml through the schema (``.vscode/settings.json`` maps it with
``yaml.schemas``): DVC rewrites params.yaml on ``dvc exp run -S`` and drops its comments, so the
schema, not the file, carries the descriptions. Tests keep both files in step with the declarations.
"""
from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import Params, default_params

SCHEMA_FILE = "params.schema.json"
REFERENCE_FILE = "docs/reference/params.md"


def schema() -> dict:
    """The JSON Schema of params.yaml (draft 2020-12, as pydantic writes it)."""
    out = Params.model_json_schema(mode="validation")
    defaults = default_params()
    for name, info in Params.model_fields.items():  # defaults made by a factory (lists) are not written
        group = info.annotation if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel) else None
        props = out["$defs"][group.__name__]["properties"] if group else {name: out["properties"][name]}
        values = defaults[name] if group else {name: defaults[name]}
        for key, prop in props.items():
            if "$ref" not in prop:
                prop.setdefault("default", values[key])
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "foldwise params.yaml"
    return out


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=False) + "\n"


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return "choice" if len(args) > 1 else f"`{args[0]}`"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(annotation, str(annotation))


def _allowed(annotation: Any, metadata: list) -> str:
    """Choices and bounds, e.g. ``synthetic, kaggle, local`` or ``>= 0, <= 1``."""
    parts = []
    for arg in [annotation, *typing.get_args(annotation)]:
        if typing.get_origin(arg) is typing.Literal:
            parts.append(", ".join(f"`{v}`" for v in typing.get_args(arg)))
        elif typing.get_origin(arg) is typing.Annotated:
            metadata = [*metadata, *typing.get_args(arg)[1:]]
        elif typing.get_origin(arg) is list:
            inner = typing.get_args(arg)[0]
            if typing.get_origin(inner) is typing.Literal:
                parts.append("each of " + ", ".join(f"`{v}`" for v in typing.get_args(inner)))
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "at least", "max_length": "at most"}
    for constraint in metadata:
        for name, symbol in symbols.items():
            value = getattr(constraint, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}" + (" items" if "length" in name else ""))
    return "; ".join(parts)


def _default(value: Any) -> str:
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`" if value else '`""`'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(model: type[BaseModel], defaults: dict, prefix: str = "") -> list[str]:
    rows = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            continue
        rows.append(f"| `{prefix}{name}` | {_type_name(info.annotation)} | {_default(defaults[name])} | "
                    f"{_cell(_allowed(info.annotation, list(info.metadata)))} | {_cell(info.description or '')} |")
    return rows


def markdown() -> str:
    """docs/reference/params.md: one table per group, top-level keys first."""
    defaults = default_params()
    header = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    lines = ["# params.yaml reference", "",
             "Generated from the declarations in `src/foldwise/params/` by "
             "`python -m foldwise.params.reference --write`; do not edit by hand.",
             "Change a value for one run with `dvc exp run -S key=value`. Unknown keys, wrong types, "
             "quoted numbers and values out of range stop the first stage that reads params, in one line.", "",
             "## Top-level keys", "", *header, *_rows(Params, defaults), ""]
    for name, info in Params.model_fields.items():
        group = info.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            doc = " ".join((group.__doc__ or "").split())
            lines += [f"## `{name}:`", "", doc, "", *header, *_rows(group, defaults[name], f"{name}."), ""]
    return "\n".join(lines)


def write(root: Path = Path(".")) -> list[Path]:
    """Write the schema and the reference under ``root``; the paths written."""
    paths = [root / SCHEMA_FILE, root / REFERENCE_FILE]
    paths[0].write_text(schema_text())
    paths[1].parent.mkdir(parents=True, exist_ok=True)
    paths[1].write_text(markdown())
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", required=True, help="write both files (run from the repository root)")
    parser.parse_args(argv)
    for path in write():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
