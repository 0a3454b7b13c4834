"""Reference architectures and the bundled trained models.

Two architectures, built from the same convolutional blocks
(``conv -> ReLU -> 2x2 max-pool``, 3x3 kernels with padding 1, so each pool
halves the map and nothing else changes its size):

- :func:`gap_net`: blocks -> ``GlobalAvgPool2d`` -> ``Linear``. The head is
  global average pooling then one linear layer, so CAM applies (Zhou et al.
  2016) and Grad-CAM equals it up to the factor ``1 / (h w)``.
- :func:`fc_net`: blocks -> ``Flatten`` -> ``Linear`` -> ``ReLU`` -> ``Linear``.
  CAM does not apply (no GAP head); Grad-CAM does.

In both, the last block has no pool: its ReLU (``relu3`` with three blocks)
is the last 4-D output, the default layer of the CAM methods. With the
default three blocks a 32x32 input gives an 8x8 map there.

:func:`pretrained` loads the models trained on minicam's own datasets and
bundled in the package (``data/*.npz``, installed as ``minicam.data``);
:data:`PRETRAINED` says what each one is and how to rebuild it.
"""

import importlib.resources
from pathlib import Path

import numpy as np

from . import io
from ._validate import as_generator, check_float_dtype, check_int
from .layers import Conv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU
from .model import Sequential

__all__ = ["gap_net", "fc_net", "ARCHITECTURES", "pretrained", "PRETRAINED", "pretrained_path"]


def _check_widths(widths):
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a sequence of ints (channels per block), got {widths!r}")
    widths = tuple(widths)
    if not widths:
        raise ValueError("widths must name at least one block, got ()")
    return tuple(check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths))


def _blocks(in_channels, widths, gen, dtype):
    """``conv_i -> relu_i [-> pool_i]`` for each width; no pool after the last block."""
    layers = []
    c = in_channels
    for i, w in enumerate(widths, start=1):
        layers.append((f"conv{i}", Conv2d(c, w, 3, padding=1, rng=gen, dtype=dtype)))
        layers.append((f"relu{i}", ReLU()))
        if i < len(widths):
            layers.append((f"pool{i}", MaxPool2d(2)))
        c = w
    return layers


def gap_net(in_channels=3, num_classes=4, widths=(16, 32, 64), rng=None, dtype=np.float64):
    """Convolutional blocks, global average pooling and one linear layer (CAM applies).

    Parameters
    ----------
    in_channels : int, default 3
        3 for RGB (shapes), 1 for grey (digits).
    num_classes : int, default 4
    widths : sequence of int, default (16, 32, 64)
        Output channels of each block. Every block but the last ends in a
        2x2 max-pool.
    rng : None, int or numpy.random.Generator
        Seed of the He-normal initialisation (biases start at zero).
    dtype : float64 (default) or float32

    Returns
    -------
    Sequential
        ``conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3, gap, fc``
        (with the default three widths).

    Shapes
    ------
    x : (N, in_channels, H, W) -> scores : (N, num_classes). The map at the
    last ReLU is ``(N, widths[-1], H / 2^(B-1), W / 2^(B-1))`` (floored at
    each pool) for ``B = len(widths)`` blocks: 8x8 for 32x32 inputs.
    """
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    widths = _check_widths(widths)
    dtype = check_float_dtype(dtype)
    gen = as_generator(rng)
    layers = _blocks(in_channels, widths, gen, dtype)
    layers.append(("gap", GlobalAvgPool2d()))
    layers.append(("fc", Linear(widths[-1], num_classes, rng=gen, dtype=dtype)))
    return Sequential(layers)


def fc_net(
    in_channels=3, num_classes=4, widths=(16, 32, 64), hidden=64, input_size=32, rng=None, dtype=np.float64
):
    """Convolutional blocks, then a two-layer fully connected head (CAM does not apply).

    Parameters
    ----------
    in_channels, num_classes, widths, rng, dtype
        As :func:`gap_net`.
    hidden : int, default 64
        Width of the hidden fully connected layer.
    input_size : int or (int, int), default 32
        Input height and width (the flattened map's size depends on it).

    Returns
    -------
    Sequential
        ``conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3, flatten,
        fc1, relu_fc1, fc2`` (with the default three widths).

    Shapes
    ------
    x : (N, in_channels, H, W) -> scores : (N, num_classes), with
    ``(H, W) = input_size``. ``fc1.W`` : (hidden, widths[-1] * h * w) for
    the ``h x w`` map of the last block (8x8 for 32x32 inputs).
    """
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    widths = _check_widths(widths)
    hidden = check_int(hidden, "hidden", minimum=1)
    if isinstance(input_size, (tuple, list)):
        if len(input_size) != 2:
            raise ValueError(f"input_size must be an int or an (H, W) pair, got {input_size!r}")
        h, w = (check_int(s, f"input_size[{i}]", minimum=1) for i, s in enumerate(input_size))
    else:
        h = w = check_int(input_size, "input_size", minimum=1)
    dtype = check_float_dtype(dtype)
    gen = as_generator(rng)
    fh, fw = h // 2 ** (len(widths) - 1), w // 2 ** (len(widths) - 1)
    if fh < 1 or fw < 1:
        raise ValueError(
            f"input_size {(h, w)} is too small for {len(widths)} blocks ({len(widths) - 1} 2x2 pools): "
            f"at least {2 ** (len(widths) - 1)} pixels per side"
        )
    layers = _blocks(in_channels, widths, gen, dtype)
    layers.append(("flatten", Flatten()))
    layers.append(("fc1", Linear(widths[-1] * fh * fw, hidden, rng=gen, dtype=dtype)))
    layers.append(("relu_fc1", ReLU()))
    layers.append(("fc2", Linear(hidden, num_classes, rng=gen, dtype=dtype)))
    return Sequential(layers)


ARCHITECTURES = {"gap": gap_net, "fc": fc_net}
"""Architectures by the name the command line uses (``--model gap|fc``)."""


# ----------------------------------------------------------------------------
# Bundled models
# ----------------------------------------------------------------------------

# What each bundled model is and how it was made. The same facts (class
# names, input shape, dataset, command) are stored in each file's metadata;
# a test checks that the two agree. ``heldout_accuracy`` is the figure the
# training command printed, on ``heldout`` data no training image comes from.
PRETRAINED = {
    "shapes-gap": {
        "file": "shapes-gap.npz",
        "architecture": "gap",
        "dataset": "shapes",
        "dataset_kwargs": {},
        "input_shape": [3, 32, 32],
        "class_names": ["circle", "square", "triangle", "cross"],
        "command": "python -m minicam train --dataset shapes --model gap --epochs 8 --n-train 4000 --seed 0 --out data/shapes-gap.npz",
        "heldout": {"n": 500, "seed": 123, "kwargs": {}},
        "heldout_accuracy": None,
    },
    "shapes-fc": {
        "file": "shapes-fc.npz",
        "architecture": "fc",
        "dataset": "shapes",
        "dataset_kwargs": {},
        "input_shape": [3, 32, 32],
        "class_names": ["circle", "square", "triangle", "cross"],
        "command": "python -m minicam train --dataset shapes --model fc --epochs 8 --n-train 4000 --seed 0 --out data/shapes-fc.npz",
        "heldout": {"n": 500, "seed": 123, "kwargs": {}},
        "heldout_accuracy": None,
    },
    "digits-gap": {
        "file": "digits-gap.npz",
        "architecture": "gap",
        "dataset": "digits",
        "dataset_kwargs": {"split": "train"},
        "input_shape": [1, 32, 32],
        "class_names": [str(d) for d in range(10)],
        "command": "python -m minicam train --dataset digits --model gap --epochs 8 --n-train 4000 --seed 0 --out data/digits-gap.npz",
        "heldout": {"n": 1000, "seed": 123, "kwargs": {"split": "test"}},
        "heldout_accuracy": None,
    },
}


def pretrained_path(name):
    """A path to the bundled file of model ``name`` (installed package first, then the checkout's ``data/``)."""
    if not isinstance(name, str) or name not in PRETRAINED:
        raise ValueError(f"name must be one of the bundled models {sorted(PRETRAINED)}, got {name!r}")
    filename = PRETRAINED[name]["file"]
    try:
        resource = importlib.resources.files("minicam.data") / filename
        if resource.is_file():
            return resource
    except (ImportError, TypeError, ValueError, OSError):
        pass  # minicam not installed: a plain source checkout has no minicam.data package
    path = Path(__file__).resolve().parent.parent / "data" / filename
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"bundled model file {filename} not found in the installed package minicam.data nor in {path.parent}; "
        f"rebuild it with: {PRETRAINED[name]['command']}"
    )


def pretrained(name):
    """A bundled trained model, as float64 in eval mode.

    Parameters
    ----------
    name : {"shapes-gap", "shapes-fc", "digits-gap"}
        See :data:`PRETRAINED` for each model's dataset, input shape, class
        names, training command and held-out accuracy.

    Returns
    -------
    Sequential
        float64 weights (trained in float32, cast exactly), eval mode. A new
        model on each call: changing it does not change the next one.

    Examples
    --------
    >>> import minicam as mc
    >>> model = mc.zoo.pretrained("shapes-gap")
    >>> mc.zoo.PRETRAINED["shapes-gap"]["class_names"]
    ['circle', 'square', 'triangle', 'cross']
    """
    resource = pretrained_path(name)
    with resource.open("rb") as f:
        return io.load(f, dtype=np.float64)
