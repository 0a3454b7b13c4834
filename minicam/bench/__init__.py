"""Speed and memory of minicam next to PyTorch/captum, measured side by side.

The code behind ``python -m minicam bench``::

    python -m minicam.bench --quick                 # about 20 s, one BLAS thread
    python -m minicam.bench --threads 1,2 --repeat 15
    python -m minicam.bench --cases conv,relu --no-memory

For each case (a layer's forward + backward, a training step, an explanation)
both sides run on the same inputs, weights and dtype, one after the other in
the same process, repeated in interleaved order (machines are noisy: the
*ratio* of two medians from one run is the figure to read, not seconds across
runs). A convolution also shows its rate in GFLOP/s as a share of the
machine's float32/float64 matrix-product rate measured in the same process.
Without PyTorch (or captum), only minicam's own figures are printed.

Thread counts: each setting runs in a fresh Python process with
``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set
before NumPy loads (OpenBLAS reads them once, at load) and
``torch.set_num_threads``; ``threadpoolctl``, when installed, confirms the
count. ``OPENBLAS_CORETYPE`` is passed on as found unless
``--unset-openblas-coretype`` is given (the table says which).

``resnet18``, ``scorecam1`` and ``smoothgrad`` also print where the time
goes, per layer type (and per ResNet stage): each leaf layer's
``_forward``/``_infer``/``_backward``/``_backward_input`` is wrapped with a timer on the
instance for a few extra calls (each torch leaf module's ``forward`` too),
then unwrapped; the library is not changed.

``scorecam1``/``scorecam32`` compare against a torch transcription of
:func:`minicam.score_cam` (:func:`minicam.bench.cases._torch_score_cam`: the same masks,
softmax increase over the zero image, and images per forward pass), not
against pytorch-grad-cam, whose ``ScoreCAM`` needs torchvision and computes
other weights (a softmax over the masked scores, ``align_corners=True``).
``smoothgrad`` draws the same noise level as captum's ``NoiseTunnel``
(``stdevs`` = minicam's ``sigma * (max - min)``) but not the same draws; both
stack the 8 noisy copies into one pass.

Peak memory: training the bundled ``shapes-gap`` model one epoch at batch 16,
and Grad-CAM of a batch of 64, each in its own process (``ru_maxrss``).

PyTorch and captum are imported only when a case runs, never by ``import minicam``.

Rooms: this module (running, the table, the command line),
:mod:`~minicam.bench.cases` (what each case builds on both sides),
:mod:`~minicam.bench.timing` (medians, the matrix-product rate, breakdowns).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from .cases import build, torch_or_none
from .timing import interleaved_medians, matmul_gflops

__all__ = ["CASES", "run", "main"]

CASES = {
    "conv16": "Conv2d fwd+bwd, batch 64, 16->32 ch, 16x16, k3 p1, float32",
    "conv3": "Conv2d fwd+bwd, batch 64, 3->16 ch, 32x32, k3 p1, float32",
    "conv3big": "Conv2d fwd+bwd, batch 64, 3->16 ch, 64x64, k3 p1, float32",
    "maxpool": "MaxPool2d 2x2 fwd+bwd, (64, 16, 32, 32), float32",
    "relu": "ReLU fwd+bwd, (64, 16, 16, 16), float32",
    "batchnorm": "BatchNorm2d train fwd+bwd, (64, 16, 32, 32), float32",
    "train": "zoo.gap_net training step (fwd, loss, bwd, Adam), batch 64, 3x32x32, float32",
    "gradcam1": "grad_cam, 1 image 3x32x32, float64 (captum LayerGradCam)",
    "gradcam64": "grad_cam, batch 64, float32 (captum LayerGradCam)",
    "guided64": "guided_backprop, batch 64, float32 (captum GuidedBackprop)",
    "occlusion": "occlusion, 1 image 3x64x64, window 8 stride 4, float64 (captum Occlusion, 64 per eval)",
    "resnet18": "grad_cam at layer4, zoo.resnet18(rng=0) eval, 1 image 3x224x224, float32 (captum LayerGradCam)",
    "scorecam1": "score_cam, 1 image 3x32x32, float32 (torch transcription of score_cam, same batching)",
    "scorecam32": "score_cam, batch 32, float32 (torch transcription of score_cam, 64 images per pass)",
    "smoothgrad": "smoothgrad(saliency) x8, sigma 0.15 of the range, 1 image, float32 (captum NoiseTunnel(Saliency))",
}
QUICK_CASES = ("conv16", "conv3", "maxpool", "relu", "batchnorm", "train", "gradcam1")


def _openblas_threads():
    """Thread count OpenBLAS reports through threadpoolctl, or None when threadpoolctl is absent."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info() if p.get("internal_api") == "openblas"]
    return counts[0] if counts else None


def measure_case(name, case, repeat, quick=False, rates=None):
    """Time one built case (interleaved medians, then its breakdown if it has one); return its row dict.

    ``rates`` caches the matrix-product GFLOP/s per dtype across cases.
    """
    rates = {} if rates is None else rates
    fns = {"mine": case.mine}
    if case.theirs is not None:
        fns["theirs"] = case.theirs
    med = interleaved_medians(fns, repeat)
    row = {"case": name, "minicam_ms": med["mine"] * 1e3, "torch_ms": None, "ratio": None, "gflops": None,
           "blas_share": None}
    if "theirs" in med:
        row["torch_ms"] = med["theirs"] * 1e3
        row["ratio"] = med["mine"] / med["theirs"]
    if case.flops:
        key = case.dtype.name
        if key not in rates:
            rates[key] = matmul_gflops(case.dtype, quick)
        row["gflops"] = case.flops / med["mine"] / 1e9
        row["blas_share"] = row["gflops"] / rates[key]
        if row["torch_ms"]:
            row["torch_share"] = case.flops / (row["torch_ms"] / 1e3) / 1e9 / rates[key]
    if case.breakdown is not None:
        row["breakdown"] = case.breakdown(repeat)
    return row


def measure(cases, repeat, quick, use_torch=True, threads=None):
    """Time ``cases`` in this process (threads as configured). Returns a list of row dicts."""
    torch, _ = torch_or_none() if use_torch else (None, None)
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    rates = {}
    rows = [measure_case(name, build(name, use_torch and torch is not None), repeat, quick, rates) for name in cases]
    return {"rows": rows, "matmul_gflops": rates, "openblas_threads": _openblas_threads(), "threads": threads,
            "torch": None if torch is None else torch.__version__}


def peak_rss(job, quick):
    """Peak resident memory (MiB) of one job run in a fresh process: ``"train"`` or ``"explain"``."""
    code = (
        "import resource, sys, numpy as np, minicam as mc\n"
        "n = int(sys.argv[2])\n"
        "model = mc.zoo.pretrained('shapes-gap')\n"
        "ds = mc.datasets.shapes(n, seed=1)\n"
        "if sys.argv[1] == 'train':\n"
        "    model.train()\n"
        "    mc.train.fit(model, (ds.images, ds.labels), epochs=1, batch_size=16,\n"
        "                 optimizer=mc.optim.Adam(model, lr=1e-3), rng=0, verbose=False)\n"
        "else:\n"
        "    model.eval(); mc.grad_cam(model, ds.images[:64], None)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    n = 64 if job == "explain" else (256 if quick else 1000)
    out = subprocess.run([sys.executable, "-c", code, job, str(n)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1]), n


def _worker_env(threads, unset_coretype):
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if unset_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
    return env


def run(cases=None, threads=(1,), repeat=9, quick=False, use_torch=True, memory=True, unset_coretype=False, file=None):
    """Measure and print the table; return the measurements.

    Parameters
    ----------
    cases : sequence of str, optional
        Keys of :data:`CASES` (default: all, or a short list with ``quick``).
    threads : sequence of int, or None
        One fresh process per thread count, with the BLAS/OpenMP variables set.
        ``None``: measure in this process with its current thread settings.
    repeat : int
        Interleaved repetitions per case (the median is reported).
    quick : bool
        Fewer cases and repetitions, smaller memory jobs: well under a minute.
    use_torch : bool
        ``False`` prints minicam's figures only, even when PyTorch is installed.
    memory : bool
        Also measure peak RSS of training one epoch and of explaining a batch of 64.
    unset_coretype : bool
        Drop ``OPENBLAS_CORETYPE`` from the worker processes' environment.
    file : writable text stream, optional (default ``sys.stdout``)

    Returns
    -------
    dict
        ``{"machine": ..., "results": [one measure() dict per thread setting], "memory": {...}}``.
    """
    file = sys.stdout if file is None else file
    cases = list(cases or (QUICK_CASES if quick else CASES))
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"cases must be among {sorted(CASES)}, got {unknown}")
    if quick:
        repeat = min(repeat, 5)
    results = []
    for t in threads if threads is not None else [None]:
        if t is None:
            results.append(measure(cases, repeat, quick, use_torch))
            continue
        cmd = [sys.executable, "-m", "minicam.bench", "--worker", "--threads", str(t), "--repeat", str(repeat),
               "--cases", ",".join(cases)] + (["--quick"] if quick else []) + ([] if use_torch else ["--no-torch"])
        out = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env(t, unset_coretype))
        if out.returncode != 0:
            raise RuntimeError(f"benchmark worker ({t} threads) failed:\n{out.stderr}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {"machine": _machine(unset_coretype), "results": results, "memory": {}}
    if memory:
        for job in ("train", "explain"):
            report["memory"][job] = peak_rss(job, quick)
    print(format_report(report), file=file)
    return report


def _machine(unset_coretype):
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "openblas_coretype": None if unset_coretype else coretype,
        "date": time.strftime("%Y-%m-%d"),
    }


def format_report(report):
    """The report as text: one table per thread setting, then peak memory."""
    m = report["machine"]
    lines = [f"minicam bench -- {m['date']}, {m['cores']} cores, Python {m['python']}, NumPy {m['numpy']}"
             + (f", OPENBLAS_CORETYPE={m['openblas_coretype']}" if m["openblas_coretype"] else "")]
    for res in report["results"]:
        versus = f"PyTorch {res['torch']}" if res["torch"] else "PyTorch not available: minicam only"
        threads = "threads as configured" if res["threads"] is None else f"{res['threads']} thread(s)"
        checked = res["openblas_threads"]
        if res["threads"] is not None:
            threads += f" (OpenBLAS reports {checked})" if checked is not None else " (set by environment)"
        rates = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in res["matmul_gflops"].items())
        lines += ["", f"{threads}; {versus}" + (f"; matrix product {rates}" if rates else "")]
        header = f"{'case':<10} {'minicam ms':>11}"
        if res["torch"]:
            header += f" {'torch ms':>9} {'ratio':>6}"
        header += f" {'GFLOP/s':>8} {'of BLAS':>8}" + (f" {'torch':>6}" if res["torch"] else "") + "  what"
        lines += [header, "-" * len(header)]
        for r in res["rows"]:
            line = f"{r['case']:<10} {r['minicam_ms']:11.2f}"
            if res["torch"]:
                line += f" {r['torch_ms']:9.2f} {r['ratio']:6.2f}" if r["ratio"] is not None else f" {'-':>9} {'-':>6}"
            if r["gflops"] is not None:
                line += f" {r['gflops']:8.1f} {100 * r['blas_share']:7.0f}%"
                if res["torch"]:
                    line += f" {100 * r.get('torch_share', float('nan')):5.0f}%"
            else:
                line += f" {'':>8} {'':>8}" + (f" {'':>6}" if res["torch"] else "")
            lines.append(line + f"  {CASES[r['case']]}")
        for r in res["rows"]:
            if r.get("breakdown"):
                lines += [""] + format_breakdown(r["case"], r["breakdown"])
    if report["memory"]:
        lines.append("")
        train, n = report["memory"]["train"]
        lines.append(f"peak RSS: training shapes-gap 1 epoch ({n} images, batch 16) {train:.0f} MiB; "
                     f"grad_cam batch 64 {report['memory']['explain'][0]:.0f} MiB")
    return "\n".join(lines)


def format_breakdown(case, b):
    """A case's breakdown (see :func:`breakdown`) as lines of text: per layer type, then per stage."""
    torch = b["total"][1:] != []
    lines = [f"where the time goes: {case}, ms, median of {b['calls']} calls with timed layers"
             + (" (torch: forward of each leaf module; autograd's backward falls under 'outside')" if torch else "")]
    header = f"  {'layers':<18} {'minicam fwd':>11} {'bwd':>7}" + (f" {'torch fwd':>10}" if torch else "")
    lines += [header, "  " + "-" * (len(header) - 2)]

    def line(label, fwd, bwd, theirs):
        text = f"  {label:<18} {fwd:11.2f} " + (f"{bwd:7.2f}" if bwd is not None else f"{'':>7}")
        return (text + (f" {theirs:10.2f}" if torch else "")).rstrip()

    for rows in (b["by_type"], b["by_stage"]):
        if rows:
            lines += [line(*r) for r in rows] + [""]
    lines.append(line("outside the layers", b["outside"][0], None, b["outside"][1] if torch else None))
    lines.append(line("whole call", b["total"][0], None, b["total"][1] if torch else None))
    return lines


def _parser():
    p = argparse.ArgumentParser(prog="python -m minicam bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=None, help=f"comma-separated, among: {', '.join(CASES)}")
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2; 'current' measures "
                                                  "in this process as configured (default 1)")
    p.add_argument("--repeat", type=int, default=9, help="interleaved repetitions per case (default 9)")
    p.add_argument("--quick", action="store_true", help="fewer cases and repetitions (well under a minute)")
    p.add_argument("--no-torch", action="store_true", help="minicam's figures only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory jobs")
    p.add_argument("--unset-openblas-coretype", action="store_true",
                   help="drop OPENBLAS_CORETYPE in the benchmark's processes (it can slow OpenBLAS down)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON after the table")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    cases = args.cases.split(",") if args.cases else None
    if args.repeat < 1:
        print(f"--repeat must be >= 1, got {args.repeat}", file=sys.stderr)
        return 2
    if args.worker:  # one thread setting, inside a process started by run()
        rows = measure(cases, args.repeat, args.quick, not args.no_torch, int(args.threads))
        print(json.dumps(rows))
        return 0
    try:
        threads = None if args.threads == "current" else [int(t) for t in args.threads.split(",")]
        if threads is not None and any(t < 1 for t in threads):
            raise ValueError
    except ValueError:
        print(f"--threads must be comma-separated positive ints or 'current', got {args.threads!r}", file=sys.stderr)
        return 2
    try:
        report = run(cases, threads, args.repeat, args.quick, not args.no_torch, not args.no_memory,
                     args.unset_openblas_coretype)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    return 0

