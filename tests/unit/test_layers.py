"""The floors of the layout (docs/architecture.md): every import points down or sideways within a floor.

Read from the checkout's source files (every import statement, also those inside functions), so a new
arrow pointing up fails here before it becomes a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Folder -> (import name, floor). Floors: 0 ground, 1 rooms, 2 top.
PACKAGES = {
    "core/ground": ("aifw", 0),
    "core/ground/slurm": ("aifw.slurm", 0),
    "extensions": ("aifw.extensions", 1),
    "extensions/kernel": ("aifw.extensions.kernel", 1),
    "extensions/server": ("aifw.extensions.server", 1),
    "hub_config": ("aifw.hub_config", 1),
    "spawners": ("aifw.spawners", 1),
    "courses": ("aifw.courses", 1),
    "notebooks": ("aifw.notebooks", 1),
    "core/top/sandbox": ("aifw.sandbox", 2),
    "core/top/grading": ("aifw.grading", 2),
    "core/top/commands": ("aifw.commands", 2),
    "core/top/usage": ("aifw.usage", 2),
    "core/top/classroom": ("aifw.classroom", 2),
}
FLOOR_NAMES = {0: "the ground floor", 1: "a room", 2: "the top floor"}


def floor_of(module: str) -> int | None:
    """The floor of an `aifw` module name (the longest package prefix wins)."""
    best = None
    for name, floor in PACKAGES.values():
        if module == name or module.startswith(name + "."):
            if best is None or len(name) > len(best[0]):
                best = (name, floor)
    return best[1] if best else None


def modules():
    for folder, (package, floor) in PACKAGES.items():
        for path in sorted((REPO / folder).glob("*.py")):
            yield path, package, floor


def imported(path: Path, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name == "aifw" or name.startswith("aifw.")]


def test_every_package_folder_exists():
    missing = [folder for folder in PACKAGES if not (REPO / folder / "__init__.py").is_file()]
    assert not missing


@pytest.mark.parametrize("path, package, floor", list(modules()), ids=lambda v: str(v).replace(str(REPO) + "/", "") if isinstance(v, Path) else None)
def test_imports_point_down(path, package, floor):
    up = []
    for line, name in imported(path, package):
        target = floor_of(name)
        if target is None:
            up.append(f"line {line}: {name} is no package of the layout")
        elif target > floor:
            up.append(f"line {line}: {name} is {FLOOR_NAMES[target]}, above {FLOOR_NAMES[floor]}")
    assert not up, f"{path.relative_to(REPO)}: " + "; ".join(up)


def test_the_kernel_helpers_need_only_the_ground_floor():
    # They run in a learner's kernel: nothing of the hub, the spawner or the courses' secrets.
    for path in sorted((REPO / "extensions/kernel").glob("*.py")):
        for line, name in imported(path, "aifw.extensions.kernel"):
            assert floor_of(name) == 0 or name.startswith("aifw.extensions.kernel"), f"{path.name}:{line} imports {name}"


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from aifw.sandbox import stack\n")
    assert imported(bad, "aifw") == [(2, "aifw.sandbox")]
    assert floor_of("aifw.sandbox.stack") == 2 and floor_of("aifw.slurm.parse") == 0 and floor_of("aifw.site") == 0
