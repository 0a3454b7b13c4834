"""Solutions key, notebook 06 (counterfactuals and scores): the counterfactual map.

Run ``python notebooks/solutions/solutions_06.py`` to see the checker's report.
"""

import numpy as np

from minicam import exercises


def counterfactual(model, x, class_idx, layer):
    """Exercise 1: L_cf = ReLU(sum_k (-alpha_k) A^k), shape (N, h, w): what lowers y^c."""
    scores = model.forward(x)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(x)), class_idx] = 1.0
    alpha = model.backward(onehot, stop_at=layer).mean(axis=(2, 3))  # (N, K)
    return np.maximum(np.einsum("nk,nkij->nij", -alpha, model.outputs[layer]), 0.0)


CHECKS = [
    (exercises.check_counterfactual, counterfactual, {}),
]

if __name__ == "__main__":
    for check, solution, kwargs in CHECKS:
        check(solution, **kwargs)
