"""Read a params file and validate it against a pydantic model; one line per bad input.

Nothing here knows what the params mean: the groups are declared in ``foldwise.params``. This module
reads the YAML, runs pydantic, and turns its first error into one line that names the file, the
dotted key, what it accepts and what it got::

    params.yaml: 'train.lr' must be > 0.0, got 0.0
    params.yaml: unknown key 'data.sorce' (allowed: source, path); did you mean 'data.source'?

The file is read as YAML 1.2 with ruamel.yaml, the parser DVC writes it with (``dvc exp run -S``):
``1e-4`` is a number and ``no``/``yes``/``on``/``off`` are strings, as DVC leaves them unquoted.
Models built on ``Group`` are strict: no string is read as a number, no bool as an integer, no
float is NaN or infinite (free-form mappings included, see ``FreeMapping``) and unknown keys are refused.
"""
from __future__ import annotations

import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from .errors import FoldwiseError

PARAMS_FILE = "params.yaml"
PARAM_ERROR = "param"  # the pydantic error type that carries a key, an expectation and a value

M = TypeVar("M", bound=BaseModel)


class Group(BaseModel):
    """A params group: frozen, strict, unknown keys refused, floats finite."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)


def param_error(key: str, expected: str, value: Any) -> PydanticCustomError:
    """An error for a validator to raise: ``'<group>.<key>' must be <expected>, got <value>``;
    ``key`` is relative to the model whose validator raises it."""
    return PydanticCustomError(PARAM_ERROR, "'{key}' must be {expected}",
                               {"key": key, "expected": expected, "value": value})


def _finite_inside(value: Any, key: str = "") -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise param_error(key, "a finite number", value)
    if isinstance(value, dict):
        for name, item in value.items():
            _finite_inside(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _finite_inside(item, f"{key}[{i}]")
    return value


# A mapping of free-form values (e.g. an albumentations transform's arguments): any keys, but no NaN
# or infinity anywhere inside it.
FreeMapping = Annotated[dict[str, Any], AfterValidator(_finite_inside)]


def read_params_file(path: str | Path = PARAMS_FILE) -> dict:
    """The mapping in ``path``, read as YAML 1.2 as DVC reads and writes it; one line if it is missing,
    not YAML, empty (nothing but comments or null: the declared defaults are no run's params) or not a
    mapping. ruamel.yaml is imported here only: the Kaggle export parses its params.json without it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    if not path.is_file():
        raise FoldwiseError(f"{path}: params file not found (run from the repository root)")
    try:
        raw = YAML(typ="safe").load(path.read_text())  # as dvc.utils.serialize.parse_yaml
    except YAMLError as exc:
        raise FoldwiseError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if raw is None or raw == {}:
        raise FoldwiseError(f"{path}: is empty; it must hold the run's params (see the repository's params.yaml)")
    if not isinstance(raw, dict):
        raise FoldwiseError(f"{path}: must be a mapping of keys to values, got {type(raw).__name__}")
    return raw


def _yaml_problem(exc: Exception) -> str:
    """ruamel's multi-line parse error as ``<problem> at line L, column C``."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def validate(model: type[M], raw: dict, source: str = PARAMS_FILE) -> M:
    """``raw`` as a ``model``; FoldwiseError with one line naming ``source`` and the first bad key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise FoldwiseError(describe(model, exc.errors(), source)) from None


# ---- pydantic's errors as one line -----------------------------------------------------------------
TYPE_EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}
RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def describe(model: type[BaseModel], errors: list[dict], source: str) -> str:
    """The first of pydantic's ``errors`` as ``{source}: '{key}' must be {expected}, got {value!r}``."""
    custom = [e for e in errors if e["type"] == PARAM_ERROR]
    error = custom[0] if custom else errors[0]
    at = _locate(model, error["loc"])
    if error["type"] == PARAM_ERROR:
        ctx = error["ctx"]
        key = ".".join(filter(None, [at.key, ctx["key"]])).replace(".[", "[")
        return _must(source, key, ctx["expected"], ctx["value"])
    if error["type"] == "extra_forbidden":
        return _unknown(source, at)
    value = error["input"]
    if at.in_union:  # a keyword or a value (train.threads: auto or 4; augment.train: auto or a list)
        siblings = [e for e in errors if _locate(model, e["loc"]).key == at.key]
        error = next((e for e in siblings if e["type"] != "literal_error"), error)
    kind = error["type"]
    if kind in RANGE_ERRORS:
        return _must(source, at.key, _range(kind, at.bounds), _shown(value, at.annotation))
    if at.in_union and kind != "literal_error":
        keywords = " or ".join(_literals(at.annotation))
        if at.list_type and not isinstance(value, str):
            return _must(source, at.key, "a list", value)
        return _must(source, at.key, f"{keywords} or {'a list' if at.list_type else TYPE_EXPECTED.get(kind, kind)}",
                     value)
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        if at.item_of_list:  # infer.tta: [rot90]
            return _must(source, at.list_key, f"a list of {choices}", value)
        return _must(source, at.key, f"one of {choices}", value)
    if kind == "too_short":
        choices = _literals(_item_type(at.annotation))
        expected = f"at least one of {', '.join(choices)}" if choices else f"at least {error['ctx']['min_length']} items"
        return _must(source, at.key, expected, value)
    if kind in ("float_type", "float_parsing") and isinstance(value, int) and not isinstance(value, bool):
        return _must(source, at.key, "a finite number", value)  # an integer beyond float range (1e999 as text)
    return _must(source, at.key, TYPE_EXPECTED.get(kind, error["msg"].lower()), value)


def _must(source: str, key: str, expected: str, value: Any) -> str:
    return f"{source}: '{key}' must be {expected}, got {value!r}"


def _unknown(source: str, at: _Location) -> str:
    name = at.key.rsplit(".", 1)[-1]
    prefix = at.key[: len(at.key) - len(name)]
    allowed = list(at.parent.model_fields) if at.parent else []
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return f"{source}: unknown key '{at.key}' (allowed: {', '.join(allowed)}){hint}"


class _Location(typing.NamedTuple):
    key: str  # the dotted key, list items as [i]
    annotation: Any  # the declared type at that key (None inside free-form values)
    metadata: list  # the field's constraints (annotated_types Ge, Le, ...)
    parent: type[BaseModel] | None  # the model that declares (or would declare) the last key
    in_union: bool  # the field is a union (a keyword or a value)
    item_of_list: bool  # the key is an item of a declared list
    list_key: str  # the list's key when item_of_list

    @property
    def bounds(self) -> dict:
        found = {}
        for constraint in self.metadata:
            for name in ("gt", "ge", "lt", "le"):
                if getattr(constraint, name, None) is not None:
                    found[name] = getattr(constraint, name)
        number = float if _number_type(self.annotation) is float else None
        return {k: number(v) if number else v for k, v in found.items()}

    @property
    def list_type(self) -> bool:
        return any(typing.get_origin(a) is list for a in _union_args(self.annotation))


def _locate(model: type[BaseModel], loc: tuple) -> _Location:
    """Walk pydantic's error ``loc`` through the declared models: the dotted key, without the union
    member tags pydantic inserts (``('train', 'threads', 'int')`` is ``train.threads``)."""
    key, cls, annotation, metadata = "", model, None, []
    parent, in_union, item_of_list, list_key = model, False, False, ""
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):
            item_of_list, list_key = typing.get_origin(_strip(annotation)) is list, key
            key += f"[{part}]"
            annotation, metadata, cls = _item_type(annotation), [], None
            continue
        key = f"{key}.{part}" if key else str(part)
        item_of_list = False
        if cls is not None and part in cls.model_fields:
            info = cls.model_fields[part]
            parent, annotation, metadata = cls, info.annotation, list(info.metadata)
            in_union = _is_union(annotation)
            if in_union and parts:  # pydantic's tag of the union member that failed
                parts.pop(0)
                member = next((a for a in typing.get_args(_strip(annotation))
                               if typing.get_origin(_strip(a)) is not typing.Literal), annotation)
                if typing.get_origin(member) is Annotated:  # Annotated[int, Ge(1)] | Literal["auto"]
                    metadata = list(typing.get_args(member)[1:])
            cls = _model_of(annotation)
        else:
            parent = cls
            annotation, metadata, cls = None, [], None
    return _Location(key, annotation, metadata, parent, in_union, item_of_list, list_key)


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_args(annotation: Any) -> tuple:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_strip(a) for a in typing.get_args(annotation))
    return (annotation,)


def _is_union(annotation: Any) -> bool:
    return len(_union_args(annotation)) > 1


def _model_of(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _item_type(annotation: Any) -> Any:
    for a in _union_args(annotation):
        if typing.get_origin(a) is list:
            return _strip(typing.get_args(a)[0])
    return None


def _literals(annotation: Any) -> list[str]:
    return [str(v) for a in _union_args(annotation) if typing.get_origin(a) is typing.Literal
            for v in typing.get_args(a)]


def _number_type(annotation: Any) -> type | None:
    return next((a for a in _union_args(annotation) if a in (int, float)), None)


def _range(kind: str, bounds: dict) -> str:
    """Bounds as the old loader wrote them: ``>= 1``, ``> 0.0``, ``>= 0 and <= 9``, ``between 0.0 and 1.0``."""
    if kind == "greater_than":
        return f"> {bounds['gt']}" + (f" and <= {bounds['le']}" if "le" in bounds else "")
    if kind == "greater_than_equal":
        return f">= {bounds['ge']}" + (f" and <= {bounds['le']}" if "le" in bounds else "")
    low = bounds.get("ge", bounds.get("gt"))
    if kind == "less_than_equal":
        return f"between {low} and {bounds['le']}" if low is not None else f"<= {bounds['le']}"
    return f"< {bounds['lt']}"


def _shown(value: Any, annotation: Any) -> Any:
    """The value as the model holds it: an integer given for a float field shows as a float."""
    if _number_type(annotation) is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# ---- the declarations as data ----------------------------------------------------------------------
def defaults(model: type[BaseModel]) -> dict:
    """Every declared default of ``model`` as a nested plain dict (groups as mappings)."""
    return model().model_dump(mode="json")


def leaf_fields(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    """(dotted key, FieldInfo) of every non-group field, groups walked in declaration order."""
    for name, info in model.model_fields.items():
        group = _model_of(info.annotation)
        if group is not None:
            yield from leaf_fields(group, f"{prefix}{name}.")
        else:
            yield prefix + name, info
