"""Solutions key, notebook 01 (layers and gradients): ReLU, max-pool and convolution with loops.

Only NumPy, no minicam layer or ``minicam.functional`` (as the exercises ask).
Run ``python notebooks/solutions/solutions_01.py`` to see each checker's report.
"""

import numpy as np

from minicam import exercises


def relu_backward(dout, x):
    """Exercise 1: dx = dout * [x > 0]; ReLU'(0) = 0, so x = 0 passes nothing."""
    return dout * (x > 0)


def max_pool_backward(dout, x, kernel_size, stride):
    """Exercise 2: each window sends its gradient to its first maximum (row-major); overlaps add up."""
    n, c, h_out, w_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(h_out):
        for j in range(w_out):
            r, q = i * stride, j * stride
            window = x[:, :, r:r + kernel_size, q:q + kernel_size].reshape(n, c, -1)  # (N, C, K*K)
            first = window.argmax(axis=2)  # (N, C): np.argmax picks the first maximum
            di, dj = np.unravel_index(first, (kernel_size, kernel_size))
            for a in range(n):
                for b in range(c):
                    dx[a, b, r + di[a, b], q + dj[a, b]] += dout[a, b, i, j]
    return dx


def conv_forward(x, W, b, stride, padding):
    """Exercise 3: cross-correlation (no kernel flip), zero padding, one dot product per output."""
    n, _, h, w = x.shape
    f, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    out = np.zeros((n, f, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]  # (N, C, K, K)
            out[:, :, i, j] = np.tensordot(window, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def conv_backward(dout, x, W, stride, padding):
    """Exercise 4: every output sends dout back along the connections it used forward."""
    k = W.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows = slice(i * stride, i * stride + k)
            cols = slice(j * stride, j * stride + k)
            g = dout[:, :, i, j]  # (N, F)
            dxp[:, :, rows, cols] += np.tensordot(g, W, axes=([1], [0]))  # the kernel, placed on the window
            dW += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))  # the window, weighted by dout
    dx = dxp[:, :, padding:xp.shape[2] - padding, padding:xp.shape[3] - padding]  # crop the padding
    return dx, dW, dout.sum(axis=(0, 2, 3))


CHECKS = [
    (exercises.check_relu_backward, relu_backward, {}),
    (exercises.check_maxpool_backward, max_pool_backward, {}),
    (exercises.check_conv_forward, conv_forward, {}),
    (exercises.check_conv_backward, conv_backward, {}),
]

if __name__ == "__main__":
    for check, solution, kwargs in CHECKS:
        check(solution, **kwargs)
