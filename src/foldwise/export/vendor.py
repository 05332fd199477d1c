"""Which of foldwise's files the export must copy: the modules its entry script imports, followed transitively.

Imports are read from the source (``ast``), not by importing, so nothing heavy loads and imports made
inside functions count too. ``foldwise_kaggle.x`` in the entry script names ``foldwise.x``; relative
imports resolve against the importing module's package. A ``from package import name`` counts ``name``
when it is a module of that package. Each module brings its packages' ``__init__.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

ROOTS = ("foldwise", "foldwise_kaggle")  # the package here, and its name in the export


def module_file(package_dir: Path, module: str) -> Path | None:
    """``core.params`` -> ``<package_dir>/core/params.py`` (or ``.../params/__init__.py``); None if neither."""
    base = package_dir.joinpath(*module.split(".")) if module else package_dir
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if module and path.is_file():
            return path
    return None


def imported_modules(path: Path, module: str, is_package: bool) -> set[str]:
    """Dotted names, relative to the package root, of the foldwise modules ``path`` (module ``module``)
    may import: absolute ``foldwise.*``/``foldwise_kaggle.*`` and relative imports, with each
    ``from X import name`` giving both ``X`` and ``X.name`` (the caller keeps those that are files)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(_inside(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*parts, *(node.module or "").split(".")] if p)
            else:
                base = _inside(node.module or "")
            if base is None:
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return {m for m in found if m}


def _inside(name: str) -> str | None:
    """``foldwise.core.params`` -> ``core.params``; None for a module outside foldwise."""
    head, _, rest = name.partition(".")
    return rest if head in ROOTS else None


def vendored_files(package_dir: Path, entry: Path, modules: Iterable[str] = ()) -> list[str]:
    """Paths relative to ``package_dir`` of every module ``entry`` (a script outside the package) and
    ``modules`` (dotted, relative to the package, e.g. ones a registry imports by name) need, sorted."""
    todo = [(entry, "", False)]
    todo += [(module_file(package_dir, m), m, True) for m in modules]
    seen: set[Path] = set()
    while todo:
        path, module, _ = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        is_package = path.name == "__init__.py"
        for name in sorted(imported_modules(path, module, is_package)):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and every package above it
                prefix = ".".join(parts[:i])
                found = module_file(package_dir, prefix)
                if found is not None and found not in seen:
                    todo.append((found, prefix, found.name == "__init__.py"))
    return sorted(str(p.relative_to(package_dir)) for p in seen if p != entry)
