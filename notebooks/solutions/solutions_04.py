"""Solutions key, notebook 04 (Grad-CAM = CAM): Grad-CAM's weights and the full map.

Only the model's ``forward`` and ``backward`` and NumPy (not ``mc.grad_cam``).
Run ``python notebooks/solutions/solutions_04.py`` to see each checker's report.
"""

import numpy as np

from minicam import exercises


def grad_cam_weights(model, x, class_idx, layer):
    """Exercise 1: alpha[n, k] = mean over (i, j) of d y^{class_idx[n]} / d A^k_ij, shape (N, K)."""
    scores = model.forward(x)  # (N, M)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0  # d y^c / d scores, one row per sample
    dA = model.backward(onehot, stop_at=layer)  # (N, K, h, w)
    return dA.mean(axis=(2, 3))


def grad_cam(model, x, class_idx, layer):
    """Exercise 2: L = ReLU(sum_k alpha_k A^k), shape (N, h, w), raw (not normalised, not upsampled)."""
    alpha = grad_cam_weights(model, x, class_idx, layer)  # its forward pass keeps A in model.outputs
    A = model.outputs[layer]  # (N, K, h, w)
    return np.maximum(np.einsum("nk,nkij->nij", alpha, A), 0.0)


CHECKS = [
    (exercises.check_grad_cam_weights, grad_cam_weights, {}),
    (exercises.check_grad_cam, grad_cam, {}),
]

if __name__ == "__main__":
    for check, solution, kwargs in CHECKS:
        check(solution, **kwargs)
