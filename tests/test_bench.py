"""The benchmark runs quickly, with PyTorch (ratio column) and without it (minicam's figures only)."""

import builtins
import io

import numpy as np
import pytest

import minicam as mc
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


# -- the explanation cases of issues 14 and 15: ResNet-18 Grad-CAM, Score-CAM, SmoothGrad ------------------------


@pytest.fixture
def one_torch_thread():
    # PyTorch's default of one thread per core crawls when the cores are busy with other work (0.4 s instead of
    # 5 ms for these tiny passes); the bench itself sets one thread per side.
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def _tiny_cases(use_torch):
    # The case builders at sizes a test affords: ResNet-18 at width 1/16 on its smallest input, 16x16 images.
    return [("resnet18", bench.cases._resnet18_case(use_torch, size=32, width=1 / 16)),
            ("scorecam32", bench.cases._gap_case("scorecam32", 2, use_torch, size=16)),
            ("smoothgrad", bench.cases._gap_case("smoothgrad", 1, use_torch, size=16))]


def _report(rows, torch_version):
    return {"machine": bench._machine(False), "memory": {},
            "results": [{"rows": rows, "matmul_gflops": {}, "openblas_threads": None, "threads": None,
                         "torch": torch_version}]}


def _check_breakdown(row, with_torch):
    b = row["breakdown"]
    types = [r[0] for r in b["by_type"]]
    assert "Conv2d" in types and "ReLU" in types
    assert all(r[1] >= 0 and r[2] >= 0 and (r[3] is not None) == with_torch for r in b["by_type"])
    assert len(b["total"]) == (2 if with_torch else 1) and b["total"][0] > 0
    # the timed layers add up to no more than the whole call (the rest is outside the layers)
    assert sum(r[1] + r[2] for r in b["by_type"]) <= b["total"][0] * 1.05
    if row["case"] == "resnet18":
        assert [r[0] for r in b["by_stage"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
        assert b["by_stage"][4][2] == 0.0  # Grad-CAM at layer4: the backward never enters layer4
    else:
        assert b["by_stage"] == []


def test_new_explanation_cases_without_torch(monkeypatch):
    _no_torch(monkeypatch)
    rows = []
    for name, case in _tiny_cases(use_torch=False):
        assert case.theirs is None
        rows.append(bench.measure_case(name, case, repeat=1, quick=True))
    assert all(r["minicam_ms"] > 0 and r["ratio"] is None for r in rows)
    assert rows[0]["gflops"] > 0  # ResNet-18: the forward products' rate
    assert "breakdown" not in rows[1]  # scorecam32 has none (it would repeat scorecam1's, slowly)
    _check_breakdown(rows[0], with_torch=False)
    _check_breakdown(rows[2], with_torch=False)
    text = bench.format_report(_report(rows, None))
    assert "where the time goes: resnet18" in text and "where the time goes: smoothgrad" in text
    assert "torch fwd" not in text and "outside the layers" in text


def test_new_explanation_cases_with_torch_have_ratios(one_torch_thread):
    torch = one_torch_thread
    pytest.importorskip("captum")
    rows = [bench.measure_case(name, case, repeat=1, quick=True) for name, case in _tiny_cases(use_torch=True)]
    assert all(r["ratio"] > 0 and r["torch_ms"] > 0 for r in rows)
    _check_breakdown(rows[0], with_torch=True)
    _check_breakdown(rows[2], with_torch=True)
    text = bench.format_report(_report(rows, torch.__version__))
    assert "torch fwd" in text and "scorecam32" in text


def test_breakdown_takes_its_timers_off_the_layers_and_modules_again(one_torch_thread):
    torch = one_torch_thread
    from minicam.interop.torch import to_torch

    model = mc.zoo.resnet18(rng=0, width=1 / 16, dtype=np.float32)
    net = to_torch(model, dtype=torch.float32)
    x = np.random.default_rng(0).random((1, 3, 32, 32)).astype(np.float32)
    calls = []

    def theirs():
        calls.append(1)
        if len(calls) == 2:  # the timed call after the warm-up fails: the timers must still come off
            raise RuntimeError("boom")
        return net(torch.tensor(x))

    with pytest.raises(RuntimeError, match="boom"):
        bench.timing.breakdown(lambda: mc.grad_cam(model, x, 0, layer="layer4"), model, theirs, net, repeat=2,
                         stage=bench.cases._stage)
    attrs = ("_forward", "_backward", "_backward_input")
    assert not any(a in vars(layer) for _, layer in model.named_layers() for a in attrs)
    assert not any("forward" in vars(m) for m in net.modules())
    np.testing.assert_allclose(net(torch.tensor(x)).detach().numpy(), model.forward(x), rtol=1e-4, atol=1e-5)


def test_run_prints_the_breakdown_and_builds_every_new_case():
    out = io.StringIO()
    report = bench.run(["smoothgrad"], threads=None, repeat=1, use_torch=False, memory=False, file=out)
    assert "where the time goes: smoothgrad" in out.getvalue()
    assert [r["case"] for r in report["results"][0]["rows"]] == ["smoothgrad"]
    # the full-size cases are built (not run: a test cannot afford ResNet-18 at 224 or 32 Score-CAMs)
    for name in ("resnet18", "scorecam1", "scorecam32"):
        case = bench.cases.build(name, use_torch=False)
        assert case.theirs is None and (case.breakdown is None) == (name == "scorecam32")


def test_torch_score_cam_reference_is_minicams_score_cam(one_torch_thread):
    # The scorecam rows time the same computation on both sides: the torch transcription gives minicam's maps.
    torch = one_torch_thread
    from minicam.interop.torch import to_torch

    model = mc.zoo.pretrained("shapes-gap").eval()
    ds = mc.datasets.shapes(2, seed=5)
    x = np.ascontiguousarray(ds.images[:, :, ::2, ::2])  # 16x16: a 2x2 map at relu5, cheap masked passes
    cls = [int(c) for c in ds.labels]
    net = to_torch(model, dtype=torch.float64)
    cut = list(dict(net.named_children())).index("relu5") + 1
    for batch_size in (64, 8):  # 32 channels (of 2 images) per pass; 4 per pass
        ref = mc.score_cam(model, x, cls, batch_size=batch_size)
        got = bench.cases._torch_score_cam(torch, net[:cut], net[cut:], net, torch.tensor(x), torch.tensor(cls),
                                     batch_size=batch_size).numpy()
        assert ref.max() > 0
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * ref.max())


def test_smoothgrad_row_follows_captums_conventions(one_torch_thread):
    # Without noise both sides reduce to the signed saliency (captum's Saliency(abs=False)) averaged over copies.
    torch = one_torch_thread
    attr = pytest.importorskip("captum.attr")
    from minicam.interop.torch import to_torch

    model = mc.zoo.pretrained("shapes-gap").eval()
    x = mc.datasets.shapes(1, seed=2).images
    net = to_torch(model, dtype=torch.float64)
    ours = mc.smoothgrad(mc.saliency, model, x, 1, n_samples=3, sigma=0.0, rng=0)
    theirs = attr.NoiseTunnel(attr.Saliency(net)).attribute(
        torch.tensor(x, requires_grad=True), nt_type="smoothgrad", nt_samples=3, stdevs=0.0, target=1, abs=False)
    np.testing.assert_allclose(theirs.detach().numpy(), ours, rtol=1e-10, atol=1e-12)
    assert (ours < 0).any()  # signed, not |grad|
