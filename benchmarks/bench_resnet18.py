"""Where ResNet-18's convolutions spend their time, one 224x224 image, float32, layer by layer.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_resnet18.py

The Grad-CAM at ``layer4`` of ResNet-18 is one forward pass and a backward
through the head only (``python -m minicam bench --cases resnet18`` times it
next to captum and breaks it down by layer type: the convolutions' forward is
most of it). This script splits each convolution's forward,
``functional.conv2d_forward``, into its two steps -- ``unfold`` (pad, then
``KH * KW`` strided slab copies) and the matrix product ``W_mat @ cols`` --
and times PyTorch's ``conv2d`` on the same input and weights (one thread,
interleaved medians). ``rest`` is whole - unfold - product (padding, the
output reshape; around zero, and below it when noise says so). Each step
runs on hot buffers here, so the sum is a lower bound of the convolutions'
time inside the model (where every layer's unfolded input is a new array,
kept for backward). Not a test: nothing here is asserted.
"""

import time

import numpy as np
import torch

from minicam import functional as F
from minicam import zoo


def conv_inputs(model, x):
    """``[(name, conv, input)]`` for every Conv2d of ``model`` during ``model.forward(x)``."""
    found = []
    for name, layer in model.named_layers():
        if type(layer).__name__ == "Conv2d":
            # record the input on the instance for one forward, then remove the wrapper
            def capture(inp, layer=layer, name=name, fn=layer._forward):
                found.append((name, layer, inp))
                return fn(inp)

            layer._forward = capture
    try:
        model.forward(x)
    finally:
        for _, layer, _ in found:
            del layer._forward
    return found


def medians(fns, repeat=15):
    """Median ms of each callable, interleaved, after one warm-up call each."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def main():
    torch.set_num_threads(1)
    model = zoo.resnet18(rng=0, dtype=np.float32)
    x = np.random.default_rng(0).random((1, 3, 224, 224)).astype(np.float32)
    print(f"{'conv':<22} {'C->F':>9} {'k/s':>4} {'out':>7} {'MFLOP':>6} {'unfold':>7} {'product':>8} "
          f"{'rest':>5} {'minicam':>8} {'torch':>6} {'ratio':>6}")
    total = dict.fromkeys(("unfold", "product", "whole", "torch"), 0.0)
    for name, conv, inp in conv_inputs(model, x):
        W = conv.params["W"]
        f, c, k, _ = W.shape
        s, p = conv.stride, conv.padding
        cols = F.unfold(inp, k, s, p)
        Wm = W.reshape(f, -1)
        tx, tW = torch.from_numpy(inp), torch.from_numpy(W)
        t = medians({
            "unfold": lambda: F.unfold(inp, k, s, p),
            "product": lambda: np.matmul(Wm, cols),
            "whole": lambda: F.conv2d_forward(inp, W, None, s, p),
            "torch": lambda: torch.nn.functional.conv2d(tx, tW, None, s, p),
        })
        for key in total:
            total[key] += t[key]
        h_out = F.output_size(inp.shape[2], k, s, p)
        mflop = 2 * f * c * k * k * h_out * h_out / 1e6
        rest = t["whole"] - t["unfold"] - t["product"]
        print(f"{name:<22} {f'{c}->{f}':>9} {f'{k}/{s}':>4} {f'{h_out}x{h_out}':>7} {mflop:6.0f} {t['unfold']:7.2f} "
              f"{t['product']:8.2f} {rest:5.2f} {t['whole']:8.2f} {t['torch']:6.2f} {t['whole'] / t['torch']:6.2f}")
    print(f"{'all 20 convolutions':<22} {'':>9} {'':>4} {'':>7} {'':>6} {total['unfold']:7.2f} {total['product']:8.2f} "
          f"{total['whole'] - total['unfold'] - total['product']:5.2f} {total['whole']:8.2f} {total['torch']:6.2f} "
          f"{total['whole'] / total['torch']:6.2f}")


if __name__ == "__main__":
    main()
