"""The benchmark runs quickly, with PyTorch (ratio column) and without it (minicam's figures only)."""

import builtins
import io

import pytest

from minicam import bench

CASES = ["conv3", "relu"]  # one convolution (GFLOP/s column) and one element-wise layer


def _no_torch(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch.") or name.startswith("captum"):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_quick_bench_without_torch_prints_minicam_figures(monkeypatch):
    _no_torch(monkeypatch)
    out = io.StringIO()
    report = bench.run(CASES, threads=None, repeat=2, quick=True, memory=False, file=out)
    text = out.getvalue()
    assert "PyTorch not available: minicam only" in text
    assert "ratio" not in text and "minicam ms" in text and "GFLOP/s" in text
    rows = report["results"][0]["rows"]
    assert [r["case"] for r in rows] == CASES
    assert all(r["minicam_ms"] > 0 and r["ratio"] is None for r in rows)
    assert rows[0]["gflops"] > 0 and 0 < rows[0]["blas_share"]


def test_quick_bench_with_torch_has_the_ratio_column():
    pytest.importorskip("torch")
    out = io.StringIO()
    report = bench.run(CASES, threads=None, repeat=2, quick=True, memory=False, file=out)
    header = next(line for line in out.getvalue().splitlines() if line.startswith("case"))
    assert "torch ms" in header and "ratio" in header
    rows = report["results"][0]["rows"]
    assert all(r["ratio"] > 0 and r["torch_ms"] > 0 for r in rows)


def test_quick_bench_command_runs_a_worker_per_thread_setting_and_measures_memory(capsys):
    # The full command path: one fresh process with one BLAS thread, then the peak-RSS jobs.
    assert bench.main(["--quick", "--cases", "relu", "--threads", "1", "--repeat", "2", "--no-torch"]) == 0
    text = capsys.readouterr().out
    assert "1 thread(s)" in text and "relu" in text
    assert "peak RSS: training shapes-gap" in text


@pytest.mark.parametrize("argv", [["--cases", "nope"], ["--threads", "0"], ["--threads", "x"], ["--repeat", "0"]])
def test_bench_refuses_bad_options(argv, capsys):
    assert bench.main(argv + ["--no-memory"]) == 2
    assert capsys.readouterr().err


def test_the_command_line_reaches_the_bench(capsys):
    from minicam.__main__ import main

    assert main(["bench", "--repeat", "0"]) == 2
    assert "--repeat must be >= 1, got 0" in capsys.readouterr().err
