"""Small random-weight models for the explanation tests (not a test module).

The identities tested hold for any weights, so nothing is trained: He-normal
weights and random biases, float64, non-square inputs.
"""

import numpy as np

import minicam as mc

N_CLASSES = 5
INPUT = (3, 10, 8)  # C, H, W: non-square


def _random_biases(model, rng, scale=0.1):
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape) * scale
    return model


def gap_net(seed=0, final_relu=True, dropout=False, batchnorm=False):
    """conv-relu-pool-conv-[bn]-[relu]-GAP-[dropout]-Linear; feature map (N, 6, 5, 4)."""
    rng = np.random.default_rng(seed)
    layers = [
        ("conv1", mc.Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu1", mc.ReLU()), ("pool1", mc.MaxPool2d(2)),
        ("conv2", mc.Conv2d(4, 6, 3, padding=1, rng=rng)),
    ]
    if batchnorm:
        layers.append(("bn2", mc.BatchNorm2d(6)))
    if final_relu:
        layers.append(("relu2", mc.ReLU()))
    layers.append(("gap", mc.GlobalAvgPool2d()))
    if dropout:
        layers.append(("drop", mc.Dropout(0.5, rng=rng)))
    layers.append(("fc", mc.Linear(6, N_CLASSES, rng=rng)))
    return _random_biases(mc.Sequential(layers), rng)


def fc_net(seed=0):
    """conv-relu-pool-conv-relu-Flatten-Linear-ReLU-Linear; feature map (N, 6, 5, 4)."""
    rng = np.random.default_rng(seed)
    model = mc.Sequential([
        ("conv1", mc.Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu1", mc.ReLU()), ("pool1", mc.MaxPool2d(2)),
        ("conv2", mc.Conv2d(4, 6, 3, padding=1, rng=rng)), ("relu2", mc.ReLU()),
        ("flatten", mc.Flatten()), ("fc1", mc.Linear(6 * 5 * 4, 16, rng=rng)), ("relu3", mc.ReLU()),
        ("fc2", mc.Linear(16, N_CLASSES, rng=rng)),
    ])
    return _random_biases(model, rng)


def embedding_net(seed=0, dim=8):
    """A GAP network whose output is an embedding (N, dim), not class scores."""
    rng = np.random.default_rng(seed)
    model = mc.Sequential([
        ("conv1", mc.Conv2d(3, 4, 3, padding=1, rng=rng)), ("relu1", mc.ReLU()), ("pool1", mc.MaxPool2d(2)),
        ("conv2", mc.Conv2d(4, 6, 3, padding=1, rng=rng)), ("relu2", mc.ReLU()),
        ("gap", mc.GlobalAvgPool2d()), ("embed", mc.Linear(6, dim, rng=rng)),
    ])
    return _random_biases(model, rng)


def images(n=3, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + INPUT)


def head(model, layer):
    """The function A -> model output of the layers after ``layer`` (on a deep copy: the model is untouched)."""
    import copy

    m = copy.deepcopy(model)
    after = m.items()[m.names.index(layer) + 1 :]

    def f(A):
        out = A
        for _, lay in after:
            out = lay.forward(out)
        return out

    return f
