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
:func:`minicam.score_cam` (:func:`_torch_score_cam`: the same masks,
softmax increase over the zero image, and images per forward pass), not
against pytorch-grad-cam, whose ``ScoreCAM`` needs torchvision and computes
other weights (a softmax over the masked scores, ``align_corners=True``).
``smoothgrad`` draws the same noise level as captum's ``NoiseTunnel``
(``stdevs`` = minicam's ``sigma * (max - min)``) but not the same draws, and
minicam runs the 8 noisy copies as 8 passes of one image where captum
stacks them into one pass of 8.

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
    "resnet18": "grad_cam at layer4, zoo.resnet18(rng=0) eval, 1 image 3x224x224, float32 (captum LayerGradCam)",
    "scorecam1": "score_cam, 1 image 3x32x32, float32 (torch transcription of score_cam, same batching)",
    "scorecam32": "score_cam, batch 32, float32 (torch transcription of score_cam, 64 images per pass)",
    "smoothgrad": "smoothgrad(saliency) x8, sigma 0.15 of the range, 1 image, float32 (captum NoiseTunnel(Saliency))",
}
QUICK_CASES = ("conv16", "conv3", "maxpool", "relu", "batchnorm", "train", "gradcam1")


class _Case:
    def __init__(self, mine, theirs=None, flops=None, dtype=np.float32, breakdown=None):
        self.mine, self.theirs, self.flops, self.dtype = mine, theirs, flops, np.dtype(dtype)
        self.breakdown = breakdown  # callable(repeat) -> rows of _breakdown, or None


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


def _torch_score_cam(torch, features, head, net, x, class_idx, batch_size=64):
    """:func:`minicam.score_cam` with its defaults, transcribed to torch (the reference of ``scorecam*``).

    Parameters
    ----------
    features, head : torch modules
        ``net`` cut after the explained layer: ``A = features(x)``, ``scores = head(A)``.
    net : torch module
        The whole model (the masked images go through it).
    x : tensor, shape (N, C, H, W)
    class_idx : long tensor, shape (N,)
    batch_size : int
        Bound on images per forward pass, as minicam's: all N samples of a channel in one pass.

    Returns
    -------
    tensor, shape (N, h, w)

    Notes
    -----
    Wang et al. 2020, eqs. 7-8 as minicam computes them: ``H^k`` is ``A^k``
    upsampled bilinearly (``align_corners=False``) and min-max normalised per
    (sample, channel), a flat map giving zeros; ``alpha_k = p_c(x * H^k) -
    p_c(0)`` (softmax probability, increase over the zero image);
    ``L = ReLU(sum_k alpha_k A^k)``.
    """
    with torch.no_grad():
        A = features(x)  # (N, K, h, w)
        head(A)  # the clean scores, which minicam computes too (to pick the class when none is given)
        n, k = A.shape[:2]
        rows = torch.arange(n)
        up = torch.nn.functional.interpolate(A, size=x.shape[2:], mode="bilinear", align_corners=False)
        flat = up.reshape(n, k, -1)
        lo, span = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True) - flat.amin(-1, keepdim=True)
        masks = ((flat - lo) / torch.where(span > 0, span, torch.ones_like(span))).reshape(up.shape)
        base = net(torch.zeros_like(x)).softmax(1)[rows, class_idx]
        weights = torch.empty((n, k), dtype=x.dtype)
        chunk = max(1, batch_size // n)
        for k0 in range(0, k, chunk):
            m = masks[:, k0 : k0 + chunk].transpose(0, 1)[:, :, None]  # (kc, N, 1, H, W)
            kc = m.shape[0]
            p = net((x[None] * m).reshape(kc * n, *x.shape[1:])).softmax(1).reshape(kc, n, -1)
            weights[:, k0 : k0 + kc] = (p[:, rows, class_idx] - base).T
        return torch.relu(torch.einsum("nk,nkhw->nhw", weights, A))


def _gap_case(name, n, use_torch, size=32):
    """``scorecam1``/``scorecam32``/``smoothgrad`` on the bundled shapes-gap model, ``n`` images, float32."""
    from . import explain, zoo

    model = zoo.pretrained("shapes-gap").astype(np.float32).eval()
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, size, size)).astype(np.float32)
    cls = [int(i) for i in rng.integers(0, 4, n)]
    sigma = 0.15  # smoothgrad's default: the noise's std is sigma * (max(x) - min(x)) of each sample

    def mine():
        if name == "smoothgrad":
            return explain.smoothgrad(explain.saliency, model, x, cls, n_samples=8, sigma=sigma, rng=0)
        return explain.score_cam(model, x, cls, layer="relu5")

    # scorecam32 is scorecam1's batch-64 forward 32 times over: its breakdown would say the same, slowly
    torch, attr = _torch() if use_torch else (None, None)
    theirs = net = None
    if torch is not None and attr is not None:
        net = _to_torch(model, torch)
        target = torch.tensor(cls)
        if name == "smoothgrad":
            method = attr.NoiseTunnel(attr.Saliency(net))
            std = float(sigma * (x.max() - x.min()))  # captum's stdevs is absolute: the same number (batch 1)
            theirs = lambda: method.attribute(  # noqa: E731
                torch.tensor(x, requires_grad=True), nt_type="smoothgrad", nt_samples=8, stdevs=std, target=target,
                abs=False)
        else:
            cut = list(dict(net.named_children())).index("relu5") + 1
            features, head, tx = net[:cut], net[cut:], torch.tensor(x)
            theirs = lambda: _torch_score_cam(torch, features, head, net, tx, target)  # noqa: E731

    breakdown = None if name == "scorecam32" else (lambda repeat: _breakdown(mine, model, theirs, net, repeat))
    return _Case(mine, theirs, breakdown=breakdown)


def _stage(name):
    # ResNet's top-level names: conv1, bn1, relu, maxpool | layer1..layer4 | avgpool, flatten, fc
    top = name.split(".")[0]
    return top if top.startswith("layer") else ("stem" if top in ("conv1", "bn1", "relu", "maxpool") else "head")


def _wrap_timer(obj, attr, key, clock):
    """Replace ``obj.<attr>`` on the instance by a timed call adding to ``clock["acc"][key]``; return an undo."""
    if attr in vars(obj):
        raise RuntimeError(f"{type(obj).__name__}.{attr} is already set on the instance: cannot time it")
    fn = getattr(obj, attr)

    def timed(*args, **kwargs):
        clock["depth"] += 1  # a leaf calling its own wrapped method (_backward_input -> _backward) counts once
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            clock["depth"] -= 1
            if clock["depth"] == 0:
                for k in key:
                    clock["acc"][k] = clock["acc"].get(k, 0.0) + time.perf_counter() - t0

    setattr(obj, attr, timed)
    return lambda: delattr(obj, attr)


def _timed_calls(fn, timers, repeat):
    """Call ``fn`` ``repeat`` times; return the median ms of each timer key and of the whole call."""
    clock = {"depth": 0, "acc": {}}
    undo = []
    try:
        for obj, attr, key in timers:
            undo.append(_wrap_timer(obj, attr, key, clock))
        fn()  # warm-up
        runs = []
        for _ in range(repeat):
            clock["acc"] = {}
            t0 = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t0, clock["acc"]))
    finally:
        for u in undo:
            u()
    keys = {k for _, acc in runs for k in acc}
    med = {k: 1e3 * float(np.median([acc.get(k, 0.0) for _, acc in runs])) for k in keys}
    med["total"] = 1e3 * float(np.median([t for t, _ in runs]))
    return med


def _breakdown(mine, model, theirs=None, net=None, repeat=5, stage=None):
    """Where the time goes, per layer type (and per stage with ``stage``): ms, medians of ``repeat`` timed calls.

    minicam: forward and backward of every leaf layer (``_forward``, ``_infer``;
    ``_backward``/``_backward_input``). torch: forward of every leaf module
    (its backward runs inside autograd, counted in ``total - layers``),
    grouped under the type of the minicam layer it stands for.
    ``stage(dotted name) -> group`` adds a second grouping (ResNet: :func:`_stage`).
    """
    named = list(model.named_layers())
    types = list(dict.fromkeys(type(layer).__name__ for _, layer in named))
    stages = list(dict.fromkeys(stage(name) for name, _ in named)) if stage else []

    layer_type = {name: type(layer).__name__ for name, layer in named}

    def keys(name, pass_):
        while name not in layer_type and "." in name:  # torch's gap.pool is minicam's gap (GlobalAvgPool2d)
            name = name.rsplit(".", 1)[0]
        return ((layer_type.get(name, "other"), pass_),) + (((stage(name), pass_),) if stage else ())

    timers = [(layer, attr, keys(name, "bwd" if "back" in attr else "fwd"))
              for name, layer in named for attr in ("_forward", "_infer", "_backward", "_backward_input")]
    sides = [_timed_calls(mine, timers, repeat)]
    if theirs is not None:
        leaves = [(name, m) for name, m in net.named_modules() if name and not list(m.children())]
        sides.append(_timed_calls(theirs, [(m, "forward", keys(name, "fwd")) for name, m in leaves], repeat))
    rows = [[g, sides[0].get((g, "fwd"), 0.0), sides[0].get((g, "bwd"), 0.0),
             sides[1].get((g, "fwd"), 0.0) if theirs is not None else None] for g in types + stages]
    by_type = rows[: len(types)]
    in_layers = [sum(r[1] + r[2] for r in by_type)] + ([sum(r[3] for r in by_type)] if theirs is not None else [])
    total = [side["total"] for side in sides]
    return {"by_type": by_type, "by_stage": rows[len(types):], "outside": [t - i for t, i in zip(total, in_layers)],
            "total": total, "calls": repeat}


def _resnet18_case(use_torch, size=224, width=1.0):
    """Grad-CAM at ``layer4`` of ResNet-18 (``zoo.resnet18``, eval mode), one image, float32, with a breakdown."""
    from . import explain, zoo

    model = zoo.resnet18(rng=0, width=width, dtype=np.float32)
    x = np.random.default_rng(0).random((1, 3, size, size)).astype(np.float32)
    cls = 5
    mine = lambda: explain.grad_cam(model, x, cls, layer="layer4")  # noqa: E731
    # forward products (Conv2d, Linear): 2 * outputs * inputs per output; the backward stops at layer4
    shapes = dict(model.output_shapes(x.shape))
    flops = sum(2 * int(np.prod(shapes[name])) * (lay.params["W"].size // lay.params["W"].shape[0])
                for name, lay in model.named_layers() if "W" in lay.params)
    torch, attr = _torch() if use_torch else (None, None)
    if torch is None or attr is None:
        return _Case(mine, flops=flops, breakdown=lambda repeat: _breakdown(mine, model, repeat=repeat, stage=_stage))
    from .interop.torch import to_torch

    net = to_torch(model, dtype=torch.float32)
    method = attr.LayerGradCam(net, net.layer4)
    target = torch.tensor([cls])

    def theirs():
        return method.attribute(torch.tensor(x, requires_grad=True), target=target, relu_attributions=True)

    return _Case(mine, theirs, flops, breakdown=lambda repeat: _breakdown(mine, model, theirs, net, repeat, _stage))


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
    if name == "resnet18":
        return _resnet18_case(use_torch)
    if name in ("scorecam1", "scorecam32", "smoothgrad"):
        return _gap_case(name, 32 if name == "scorecam32" else 1, use_torch)
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


def measure_case(name, case, repeat, quick=False, rates=None):
    """Time one built case (interleaved medians, then its breakdown if it has one); return its row dict.

    ``rates`` caches the matrix-product GFLOP/s per dtype across cases.
    """
    rates = {} if rates is None else rates
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
    if case.breakdown is not None:
        row["breakdown"] = case.breakdown(repeat)
    return row


def measure(cases, repeat, quick, use_torch=True, threads=None):
    """Time ``cases`` in this process (threads as configured). Returns a list of row dicts."""
    torch, _ = _torch() if use_torch else (None, None)
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    rates = {}
    rows = [measure_case(name, _build(name, use_torch and torch is not None), repeat, quick, rates) for name in cases]
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
    """A case's breakdown (see :func:`_breakdown`) as lines of text: per layer type, then per stage."""
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


if __name__ == "__main__":
    sys.exit(main())
