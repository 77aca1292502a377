"""The house has no import cycle and no climbing back up: each module of the package imports
only modules above it in musicgen.MODULES, lazy imports inside functions included."""

import ast
from pathlib import Path

import musicgen

PACKAGE = Path(musicgen.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The package's modules that a file imports (from . import x, from .x import y)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("musicgen."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_is_placed_in_the_house():
    files = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert files == set(musicgen.MODULES)


def test_modules_import_only_the_modules_above_them():
    order = {name: i for i, name in enumerate(musicgen.MODULES)}
    climbing = [
        f"{name} imports {used}"
        for name in musicgen.MODULES
        for used in sorted(imported_modules(PACKAGE / f"{name}.py"))
        if order[used] >= order[name]
    ]
    assert not climbing
