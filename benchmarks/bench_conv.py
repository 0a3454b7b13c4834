"""Side-by-side speed of the convolution kernels, in one run.

    python benchmarks/bench_conv.py

Prints the time of each kernel and the ratios between them, measured in the
same process one after the other (these machines are noisy: compare ratios
from one run, not seconds across runs). Not a test: nothing here is asserted.
"""

import time

import numpy as np

from minicam import functional as F


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    rng = np.random.default_rng(0)
    # A training-sized layer (batch 64 of 16x16 maps, 16 -> 32 channels) and a
    # tiny one the naive loops can afford.
    cases = [("tiny  N=2  C=3->F=4  8x8   k3 p1", (2, 3, 8, 8, 4), True),
             ("train N=64 C=16->F=32 16x16 k3 p1", (64, 16, 16, 16, 32), False)]
    print(f"{'case':36s} {'kernel':22s} {'forward+backward':>16s}")
    for label, (n, c, h, w, f), with_naive in cases:
        x = rng.standard_normal((n, c, h, w))
        W = rng.standard_normal((f, c, 3, 3))
        b = rng.standard_normal(f)
        dout = rng.standard_normal((n, f, h, w))

        def fast(x=x, W=W, b=b, dout=dout):
            _, cols = F.conv2d_forward(x, W, b, 1, 1)
            F.conv2d_backward(dout, cols, x.shape, W, 1, 1)

        x32, W32, b32, d32 = (a.astype(np.float32) for a in (x, W, b, dout))

        def fast32():
            _, cols = F.conv2d_forward(x32, W32, b32, 1, 1)
            F.conv2d_backward(d32, cols, x32.shape, W32, 1, 1)

        t64 = best_of(fast)
        t32 = best_of(fast32)
        print(f"{label:36s} {'im2col float64':22s} {t64 * 1e3:13.2f} ms")
        print(f"{label:36s} {'im2col float32':22s} {t32 * 1e3:13.2f} ms   (float64 / float32 = {t64 / t32:.1f}x)")
        if with_naive:

            def naive():
                F.conv2d_forward_naive(x, W, b, 1, 1)
                F.conv2d_backward_naive(dout, x, W, 1, 1)

            tn = best_of(naive, repeat=2)
            print(f"{label:36s} {'naive loops float64':22s} {tn * 1e3:13.2f} ms   (naive / im2col = {tn / t64:.0f}x)")


if __name__ == "__main__":
    main()
