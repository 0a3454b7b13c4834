"""The package's layout is its architecture: imports only run down the floors, never in a circle.

data -> model (layers, backward) -> explanations -> metrics and studies -> figures -> commands.
A lower room never imports a higher one, nothing imports the package's ``__init__`` (it only
re-exports), and there is no import cycle. The imports are read from the source (``ast``),
including those inside functions, so a lazy import cannot hide a wrong direction.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minicam"

# Floor of every module, by dotted-name prefix (the longest matching prefix wins).
FLOORS = {
    "minicam._validate": 0,
    "minicam._version": 0,
    "minicam._resources": 0,
    "minicam.functional": 1,
    "minicam.losses": 1,
    "minicam.layers": 2,  # a package: base, spatial, dense, activations, normalization
    "minicam.model": 3,
    "minicam.optim": 4,
    "minicam.train": 4,
    "minicam.gradcheck": 4,
    "minicam.io": 4,
    "minicam.images": 4,
    "minicam.datasets": 4,
    "minicam.zoo": 4,
    "minicam.embedding": 4,
    "minicam.explain": 5,
    "minicam.metrics": 6,
    "minicam.recipes": 6,
    "minicam.embedding_db": 6,
    "minicam.diagnose": 6,
    "minicam.viz": 7,
    "minicam.evaluation": 8,
    "minicam.embedding_study": 8,
    "minicam.embedding_demo": 8,
    "minicam.demo": 8,
    "minicam.exercises": 8,
    "minicam.bench": 8,
    "minicam.interop": 8,
    "minicam.__main__": 9,
}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor(name):
    best = max((prefix for prefix in FLOORS if name == prefix or name.startswith(prefix + ".")), key=len, default=None)
    assert best is not None, f"{name} has no floor: add it to FLOORS in {__file__} (where does it sit in the layout?)"
    return FLOORS[best]


def imports_of(name, path):
    """The minicam modules ``name`` imports, with the line of each import."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "minicam"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "minicam":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_floor():
    for name in MODULES:
        if name != "minicam":
            floor(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "minicam"))
def test_imports_run_down_the_floors_and_never_through_the_package_init(name):
    for target, line in GRAPH[name]:
        assert target != "minicam", (
            f"{name} (line {line}) imports from minicam/__init__.py, which only re-exports: import from the "
            "module that defines the name"
        )
        assert target in MODULES, f"{name} (line {line}) imports {target}, which is not a module of the package"
        assert floor(target) <= floor(name), (
            f"{name} (floor {floor(name)}) imports {target} (floor {floor(target)}) at line {line}: "
            "an import runs up the floors"
        )


def test_no_import_cycle():
    state = {}

    def visit(name, path):
        state[name] = "open"
        for target, _ in GRAPH[name]:
            if target == "minicam" or target == name:
                continue
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in MODULES:
        if name != "minicam" and name not in state:
            visit(name, [name])


def test_the_checker_sees_a_wrong_direction(tmp_path):
    # The rule can fail: a low room importing a high one is reported.
    fake = tmp_path / "minicam" / "layers.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from .viz import overlay\n    from . import grad_cam\n")
    targets = [t for t, _ in imports_of("minicam.layers", fake)]
    assert "minicam.viz" in targets and floor("minicam.viz") > floor("minicam.layers")
    assert "minicam" in targets  # `from . import grad_cam` reads the package __init__
