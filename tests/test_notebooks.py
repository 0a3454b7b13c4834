"""Every notebook in notebooks/ runs top to bottom without an error or a failed assert.

Each notebook is executed in a fresh ``python3`` kernel with nbclient, from
the notebooks/ folder (as ``jupyter lab notebooks/`` would), on a copy in
memory: the committed file is never rewritten. A failing cell fails the test
with the cell's source and traceback. The whole series is meant to run in
under 5 minutes on 2 cores; each notebook's run time is printed with ``-s``.
"""

import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell: generous for a slow CI machine; the series takes far less


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no numbered notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")


MAX_BYTES = 400_000  # committed with their outputs, small enough to read on the web


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_small_and_clean(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes"
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not any(out.get("output_type") == "error" for out in cell.get("outputs", [])), (
            f"{path.name} was committed with an error output"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_exercise_cells_hold_stubs_not_solutions(path):
    """A cell that runs a checker defines the student's function as a stub only."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "mc.exercises.check_" in cell.source:
            assert "raise NotImplementedError" in cell.source, f"{path.name}: exercise cell without a stub:\n{cell.source}"
            body = [line for line in cell.source.splitlines()
                    if line.startswith("    ") and not line.strip().startswith(("#", "raise NotImplementedError"))]
            assert not body, f"{path.name}: exercise cell holds code beyond the stub:\n{cell.source}"
