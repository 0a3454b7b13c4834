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

Peak memory: training the bundled ``shapes-gap`` model one epoch at batch 16,
and Grad-CAM of a batch of 64, each in its own process (``ru_maxrss``).

PyTorch and captum are imported only when a case runs, never by ``import minicam``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

__all__ = ["CASES", "run", "main"]

# name -> what is timed (the builders are below)
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
}
QUICK_CASES = ("conv16", "conv3", "maxpool", "relu", "batchnorm", "train", "gradcam1")


class _Case:
    def __init__(self, mine, theirs=None, flops=None, dtype=np.float32):
        self.mine, self.theirs, self.flops, self.dtype = mine, theirs, flops, np.dtype(dtype)


def _torch():
    """``(torch, captum_attr_or_None)``, or ``(None, None)`` when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None, None
    try:
        from captum import attr
    except ImportError:
        attr = None
    return torch, attr


def _conv_case(c, f, size, use_torch):
    from .layers import Conv2d

    rng = np.random.default_rng(0)
    n, k = 64, 3
    conv = Conv2d(c, f, k, padding=1, rng=0, dtype=np.float32)
    conv.params["b"] = rng.standard_normal(f).astype(np.float32)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    dout = rng.standard_normal((n, f, size, size)).astype(np.float32)

    def mine():
        conv.forward(x)
        conv.backward(dout)

    flops = 3 * 2 * n * f * c * k * k * size * size  # forward, dW and dx: one product each
    torch, _ = _torch() if use_torch else (None, None)
    if torch is None:
        return _Case(mine, flops=flops)
    tconv = torch.nn.Conv2d(c, f, k, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.params["W"]))
        tconv.bias.copy_(torch.tensor(conv.params["b"]))
    tx, tdout = torch.tensor(x, requires_grad=True), torch.tensor(dout)

    def theirs():
        tconv(tx).backward(tdout)

    return _Case(mine, theirs, flops)


def _layer_case(make_mine, make_theirs, shape, use_torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = make_mine()
    dout = rng.standard_normal(layer.output_shape(shape)).astype(np.float32)

    def mine():
        layer.forward(x)
        layer.backward(dout)

    torch, _ = _torch() if use_torch else (None, None)
    if torch is None:
        return _Case(mine)
    module = make_theirs(torch)
    tx, tdout = torch.tensor(x, requires_grad=True), torch.tensor(dout)

    def theirs():
        module(tx).backward(tdout)

    return _Case(mine, theirs)


def _train_case(use_torch):
    from . import optim, zoo
    from .losses import softmax_cross_entropy

    rng = np.random.default_rng(0)
    model = zoo.gap_net(rng=0, dtype=np.float32).train()
    x = rng.random((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    torch, _ = _torch() if use_torch else (None, None)
    tmodel = _to_torch(model, torch) if torch is not None else None
    opt = optim.Adam(model, lr=1e-3)

    def mine():
        _, dscores = softmax_cross_entropy(model.forward(x), y)
        model.backward(dscores)
        opt.step()

    if torch is None:
        return _Case(mine)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def theirs():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    return _Case(mine, theirs)


def _to_torch(model, torch):
    from .interop.torch import to_torch

    return to_torch(model, dtype=torch.float32 if model.layers[0].params["W"].dtype == np.float32 else torch.float64)


def _explain_case(name, use_torch):
    from . import explain, zoo

    dtype = np.float64 if name in ("gradcam1", "occlusion") else np.float32
    model = zoo.pretrained("shapes-gap").astype(dtype).eval()
    rng = np.random.default_rng(0)
    n = 1 if name in ("gradcam1", "occlusion") else 64
    size = 64 if name == "occlusion" else 32
    x = rng.random((n, 3, size, size)).astype(dtype)
    cls = [int(i) for i in rng.integers(0, 4, n)]
    if name.startswith("gradcam"):
        mine = lambda: explain.grad_cam(model, x, cls)  # noqa: E731
    elif name == "guided64":
        mine = lambda: explain.guided_backprop(model, x, cls)  # noqa: E731
    else:
        mine = lambda: explain.occlusion(model, x, cls, window=8, stride=4)  # noqa: E731
    torch, attr = _torch() if use_torch else (None, None)
    if torch is None or attr is None:
        return _Case(mine, dtype=dtype)
    net = _to_torch(model, torch)
    target = torch.tensor(cls)
    if name.startswith("gradcam"):
        method = attr.LayerGradCam(net, net.relu5)
        theirs = lambda: method.attribute(torch.tensor(x, requires_grad=True), target=target, relu_attributions=True)  # noqa: E731
    elif name == "guided64":
        method = attr.GuidedBackprop(net)
        theirs = lambda: method.attribute(torch.tensor(x, requires_grad=True), target=target)  # noqa: E731
    else:
        method = attr.Occlusion(net)

        def theirs():
            with torch.no_grad():
                method.attribute(torch.tensor(x), sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                 baselines=0.0, target=target, perturbations_per_eval=64)

    return _Case(mine, theirs, dtype=dtype)


def _build(name, use_torch):
    from .layers import BatchNorm2d, MaxPool2d, ReLU

    if name == "conv16":
        return _conv_case(16, 32, 16, use_torch)
    if name == "conv3":
        return _conv_case(3, 16, 32, use_torch)
    if name == "conv3big":
        return _conv_case(3, 16, 64, use_torch)
    if name == "maxpool":
        return _layer_case(lambda: MaxPool2d(2), lambda t: t.nn.MaxPool2d(2), (64, 16, 32, 32), use_torch)
    if name == "relu":
        return _layer_case(ReLU, lambda t: t.nn.ReLU(), (64, 16, 16, 16), use_torch)
    if name == "batchnorm":
        return _layer_case(lambda: BatchNorm2d(16, dtype=np.float32), lambda t: t.nn.BatchNorm2d(16), (64, 16, 32, 32),
                           use_torch)
    if name == "train":
        return _train_case(use_torch)
    return _explain_case(name, use_torch)


def _interleaved_medians(fns, repeat, warmup=2):
    """Median seconds of each callable, run ``repeat`` times in interleaved order after a warm-up."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {key: float(np.median(t)) for key, t in times.items()}


def _matmul_gflops(dtype, quick):
    n = 512 if quick else 1024
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    t = _interleaved_medians({"mm": lambda: a @ a}, repeat=5 if quick else 9, warmup=1)["mm"]
    return 2 * n**3 / t / 1e9


def _openblas_threads():
    """Thread count OpenBLAS reports through threadpoolctl, or None when threadpoolctl is absent."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [p["num_threads"] for p in threadpool_info() if p.get("internal_api") == "openblas"]
    return counts[0] if counts else None


def measure(cases, repeat, quick, use_torch=True, threads=None):
    """Time ``cases`` in this process (threads as configured). Returns a list of row dicts."""
    torch, _ = _torch() if use_torch else (None, None)
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    rates = {}
    rows = []
    for name in cases:
        case = _build(name, use_torch and torch is not None)
        fns = {"mine": case.mine}
        if case.theirs is not None:
            fns["theirs"] = case.theirs
        med = _interleaved_medians(fns, repeat)
        row = {"case": name, "minicam_ms": med["mine"] * 1e3, "torch_ms": None, "ratio": None, "gflops": None,
               "blas_share": None}
        if "theirs" in med:
            row["torch_ms"] = med["theirs"] * 1e3
            row["ratio"] = med["mine"] / med["theirs"]
        if case.flops:
            key = case.dtype.name
            if key not in rates:
                rates[key] = _matmul_gflops(case.dtype, quick)
            row["gflops"] = case.flops / med["mine"] / 1e9
            row["blas_share"] = row["gflops"] / rates[key]
            if row["torch_ms"]:
                row["torch_share"] = case.flops / (row["torch_ms"] / 1e3) / 1e9 / rates[key]
        rows.append(row)
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
    if report["memory"]:
        lines.append("")
        train, n = report["memory"]["train"]
        lines.append(f"peak RSS: training shapes-gap 1 epoch ({n} images, batch 16) {train:.0f} MiB; "
                     f"grad_cam batch 64 {report['memory']['explain'][0]:.0f} MiB")
    return "\n".join(lines)


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


if __name__ == "__main__":
    sys.exit(main())
