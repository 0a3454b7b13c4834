"""Speed of one training step of the reference architectures, per image and per layer.

    python benchmarks/bench_train.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_train.py   # compare: one BLAS thread

Prints, for zoo.gap_net and zoo.fc_net on 32x32 RGB batches, the wall-clock and
CPU time of forward + loss + backward + Adam step per image in float32 and
float64, and where the time goes layer by layer (float32). Wall-clock depends
on what else runs on the machine; CPU time counts every thread of this
process. Not a test: nothing here is asserted.
"""

import time

import numpy as np

from minicam import optim, zoo
from minicam.losses import softmax_cross_entropy


def step_time(model, x, y, steps):
    opt = optim.Adam(model, lr=1e-3)
    model.train()
    scores = model.forward(x)  # warm-up (allocations, BLAS threads)
    model.backward(softmax_cross_entropy(scores, y)[1])
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss, dscores = softmax_cross_entropy(model.forward(x), y)
        model.backward(dscores)
        opt.step()
    n = steps * x.shape[0]
    return (time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def layer_times(model, x, y, steps):
    fwd = dict.fromkeys(model.names, 0.0)
    bwd = dict.fromkeys(model.names, 0.0)
    for _ in range(steps):
        h = x
        for name, layer in model.items():
            t = time.perf_counter()
            h = layer.forward(h)
            fwd[name] += time.perf_counter() - t
        _, d = softmax_cross_entropy(h, y)
        for name, layer in reversed(model.items()):
            t = time.perf_counter()
            d = layer.backward(d)
            bwd[name] += time.perf_counter() - t
    n = steps * x.shape[0]
    return {k: (fwd[k] / n * 1e3, bwd[k] / n * 1e3) for k in model.names}


def main():
    rng = np.random.default_rng(0)
    batch, steps = 16, 30
    y = rng.integers(0, 4, batch)
    print(f"one training step (forward, loss, backward, Adam), batch {batch}, 3x32x32 inputs")
    print(f"{'model':<10} {'dtype':<8} {'wall ms/img':>12} {'CPU ms/img':>11}")
    for name, make in (("gap_net", zoo.gap_net), ("fc_net", zoo.fc_net)):
        for dtype in (np.float32, np.float64):
            x = rng.random((batch, 3, 32, 32)).astype(dtype)
            wall, cpu = step_time(make(rng=0, dtype=dtype), x, y, steps)
            print(f"{name:<10} {np.dtype(dtype).name:<8} {wall:12.3f} {cpu:11.3f}")
    print()
    print("gap_net, float32, per layer (ms per image):")
    x = rng.random((batch, 3, 32, 32)).astype(np.float32)
    times = layer_times(zoo.gap_net(rng=0, dtype=np.float32).train(), x, y, steps)
    total = sum(f + b for f, b in times.values())
    for name, (f, b) in times.items():
        print(f"  {name:<6} forward {f:6.3f}  backward {b:6.3f}  ({100 * (f + b) / total:4.1f}%)")
    print(f"  total  {total:.3f} ms per image")


if __name__ == "__main__":
    main()
