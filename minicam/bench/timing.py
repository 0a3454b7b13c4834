"""Timing: interleaved medians, the matrix-product rate, and per-layer breakdowns by temporary timers."""

import time

import numpy as np

__all__ = ["interleaved_medians", "matmul_gflops", "breakdown"]


def interleaved_medians(fns, repeat, warmup=2):
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


def matmul_gflops(dtype, quick):
    n = 512 if quick else 1024
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    t = interleaved_medians({"mm": lambda: a @ a}, repeat=5 if quick else 9, warmup=1)["mm"]
    return 2 * n**3 / t / 1e9



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


def breakdown(mine, model, theirs=None, net=None, repeat=5, stage=None):
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
