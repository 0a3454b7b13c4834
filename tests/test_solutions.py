"""The teachers' solutions key (notebooks/solutions/) stays correct and complete.

Every solution passes its checker with ``raise_on_fail=True``, and every
exercise stub of a numbered notebook (a cell that runs ``mc.exercises.check_*``)
has a solution of the same name, checked by the same checker.
"""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
KEYS = sorted(SOLUTIONS.glob("solutions_[0-9][0-9].py"))


def load(path):
    spec = importlib.util.spec_from_file_location(f"minicam_solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_checks():
    for path in KEYS:
        for check, solution, kwargs in load(path).CHECKS:
            yield pytest.param(check, solution, kwargs, id=f"{path.stem}:{solution.__name__}")


def test_there_is_a_key():
    assert KEYS, f"no solutions_NN.py in {SOLUTIONS}"


@pytest.mark.parametrize("check, solution, kwargs", list(all_checks()))
def test_solution_passes_its_checker(check, solution, kwargs):
    assert check(solution, raise_on_fail=True, verbose=False, **kwargs) is True


STUB = re.compile(r"^def (\w+)\(", re.M)
CHECK = re.compile(r"mc\.exercises\.(check_\w+)\((\w+)(.*)\)")


def notebook_stubs():
    """(notebook number, function name, checker name, mode or None) for every exercise cell."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "mc.exercises.check_" in cell.source:
                for checker, fn, rest in CHECK.findall(cell.source):
                    mode = re.search(r"mode=\"(\w+)\"", rest)
                    yield path.name[:2], fn, checker, mode.group(1) if mode else None


def test_every_notebook_stub_has_a_checked_solution():
    stubs = list(notebook_stubs())
    assert len(stubs) >= 7
    for number, fn, checker, mode in stubs:
        key = SOLUTIONS / f"solutions_{number}.py"
        assert key.exists(), f"notebook {number}: no {key.name} for the stub {fn}"
        checked = {(solution.__name__, check.__name__, kwargs.get("mode")) for check, solution, kwargs in load(key).CHECKS}
        assert (fn, checker, mode) in checked, f"notebook {number}: {fn} ({checker}, mode={mode}) has no checked solution"
