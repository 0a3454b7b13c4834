"""Solutions key, notebook 05 (guided backprop and Guided Grad-CAM): two ReLU rules and Guided Grad-CAM.

Run ``python notebooks/solutions/solutions_05.py`` to see each checker's report.
"""

import numpy as np

import minicam as mc
from minicam import exercises


def guided_relu_backward(dout, x):
    """Exercise 1: keep dout where the forward input was positive AND dout is positive."""
    return dout * (x > 0) * (dout > 0)


def deconvnet_relu_backward(dout, x):
    """Exercise 2: the positive part of dout; the forward input x plays no role."""
    return dout * (dout > 0)


def guided_grad_cam(model, x, class_idx, layer):
    """Exercise 3: upsample(Grad-CAM, bilinear) * guided backprop, broadcast over channels: (N, C, H, W)."""
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    A = model.outputs[layer]  # (N, K, h, w)
    alpha = model.backward(onehot, stop_at=layer).mean(axis=(2, 3))  # (N, K)
    L = np.maximum(np.einsum("nk,nkij->nij", alpha, A), 0.0)  # (N, h, w)
    guided = model.backward(onehot, relu_mode="guided")  # (N, C, H, W); the forward cache serves both passes
    L_up = mc.upsample(L, x.shape[2:])  # bilinear, as in the paper
    return L_up[:, None] * guided


CHECKS = [
    (exercises.check_relu_backward, guided_relu_backward, {"mode": "guided"}),
    (exercises.check_relu_backward, deconvnet_relu_backward, {"mode": "deconvnet"}),
    (exercises.check_guided_grad_cam, guided_grad_cam, {}),
]

if __name__ == "__main__":
    for check, solution, kwargs in CHECKS:
        check(solution, **kwargs)
