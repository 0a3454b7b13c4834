"""Reference architectures, ImageNet architectures with torchvision's layout, and the bundled trained models.

Two small architectures, built from the same convolutional blocks
(``conv -> [2x2 max-pool] -> BatchNorm -> ReLU``, 3x3 kernels with padding 1,
a pool in the first two blocks only, so each pool halves the map and nothing
else changes its size):

- :func:`gap_net`: blocks -> ``GlobalAvgPool2d`` -> ``Linear``. The head is
  global average pooling then one linear layer, so CAM applies (Zhou et al.
  2016) and Grad-CAM equals it up to the factor ``1 / (h w)``.
- :func:`fc_net`: blocks -> ``Flatten`` -> ``Linear`` -> ``ReLU`` -> ``Linear``.
  CAM does not apply (no GAP head); Grad-CAM does.

In both, the last block has no pool: its ReLU (``relu5`` with the default
five blocks) is the last 4-D output, the default layer of the CAM methods. A
32x32 input gives an 8x8 map there.

The ImageNet architectures live in :mod:`minicam.zoo.imagenet` and are
re-exported here: :func:`alexnet`, :func:`vgg11`, :func:`vgg11_bn`,
:func:`vgg16`, :func:`vgg16_bn`, :func:`resnet18`, :func:`resnet34`,
:func:`resnet50`. Their layers carry torchvision's module names and shapes, so
a torchvision state dict loads unchanged with
:func:`minicam.interop.keys.load_torch_state_dict`; a ``width`` factor gives
tiny instances of the same layout. They are listed in
:data:`IMAGENET_ARCHITECTURES`, not in :data:`ARCHITECTURES` (the builders the
``train`` command calls on minicam's 32x32 datasets).

:func:`pretrained` loads the models trained on minicam's own datasets and
bundled in the package (``data/*.npz``, installed as ``minicam.data``);
:data:`PRETRAINED` says what each one is and how to rebuild it (the training
recipe itself is :func:`minicam.recipes.train_reference`).
"""

import numpy as np

from .. import io
from .._resources import bundled_file
from .._validate import as_generator, check_float_dtype, check_int, check_pair
from ..layers import BatchNorm2d, Conv2d, Flatten, GlobalAvgPool2d, L2Normalize, Linear, MaxPool2d, ReLU
from ..model import Sequential
from .imagenet import (
    IMAGENET_ARCHITECTURES,
    alexnet,
    resnet18,
    resnet34,
    resnet50,
    vgg11,
    vgg11_bn,
    vgg16,
    vgg16_bn,
)

__all__ = [
    "gap_net",
    "fc_net",
    "embed_net",
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "ARCHITECTURES",
    "IMAGENET_ARCHITECTURES",
    "TRAINING_DATA",
    "PRETRAINED",
    "pretrained",
    "pretrained_path",
]


def _check_widths(widths):
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"widths must be a sequence of ints (channels per block), got {widths!r}")
    widths = tuple(widths)
    if not widths:
        raise ValueError("widths must name at least one block, got ()")
    return tuple(check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths))


def _check_pools(num_pools, widths):
    if num_pools is None:
        # Two pools (32x32 -> 8x8), fewer for a short network: the last
        # block never pools.
        return min(2, len(widths) - 1)
    num_pools = check_int(num_pools, "num_pools", minimum=0)
    if num_pools >= len(widths):
        raise ValueError(
            f"num_pools must be less than the number of blocks ({len(widths)}): the last block has no pool, "
            f"so that its ReLU is the feature map; got num_pools={num_pools}"
        )
    return num_pools


def _blocks(in_channels, widths, num_pools, batch_norm, gen, dtype):
    """One block per width: ``conv_i [-> pool_i] [-> bn_i] -> relu_i``, a pool in the first ``num_pools`` blocks."""
    layers = []
    c = in_channels
    for i, w in enumerate(widths, start=1):
        layers.append((f"conv{i}", Conv2d(c, w, 3, padding=1, rng=gen, dtype=dtype)))
        if i <= num_pools:
            # Pooling right after the convolution: BatchNorm and ReLU then
            # run on a quarter of the positions. Max-pool commutes with ReLU
            # (both monotone), so this is the usual conv -> ReLU -> pool up to
            # BatchNorm's per-channel scale, which the network learns anyway.
            layers.append((f"pool{i}", MaxPool2d(2)))
        if batch_norm:
            layers.append((f"bn{i}", BatchNorm2d(w, dtype=dtype)))
        layers.append((f"relu{i}", ReLU()))
        c = w
    return layers


def _classifier(in_features, num_classes, gen, dtype):
    # The output layer feeds a softmax, not a ReLU, so He's factor 2 (which
    # makes up for the half of its input a ReLU zeroes) does not apply:
    # LeCun's std 1 / sqrt(fan_in) keeps the initial scores small, and the
    # initial loss near log(num_classes), the uniform guess. (Much smaller
    # starting weights slow Adam down: its first steps, ~lr each, would
    # then be large next to the weights.)
    fc = Linear(in_features, num_classes, rng=gen, dtype=dtype)
    fc.params["W"] = (fc.params["W"] / np.sqrt(2.0)).astype(dtype)
    return fc


def _check_common(in_channels, num_classes, widths, num_pools, batch_norm, dtype):
    in_channels = check_int(in_channels, "in_channels", minimum=1)
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    widths = _check_widths(widths)
    num_pools = _check_pools(num_pools, widths)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be True or False, got {batch_norm!r}")
    return in_channels, num_classes, widths, num_pools, check_float_dtype(dtype)


def gap_net(
    in_channels=3, num_classes=4, widths=(16, 16, 32, 32, 64), num_pools=None, batch_norm=True, rng=None, dtype=np.float64
):
    """Convolutional blocks, global average pooling and one linear layer (CAM applies).

    Parameters
    ----------
    in_channels : int, default 3
        3 for RGB (shapes), 1 for grey (digits).
    num_classes : int, default 4
    widths : sequence of int, default (16, 16, 32, 32, 64)
        Output channels of each block ``conv (3x3, padding 1) [-> max-pool 2x2]
        [-> BatchNorm] -> ReLU``.
    num_pools : int, optional
        The first ``num_pools`` blocks end in a 2x2 max-pool; the others keep
        the map's size (``num_pools < len(widths)``). Default
        ``min(2, len(widths) - 1)``: 2 for the default widths.
    batch_norm : bool, default True
        A ``BatchNorm2d`` between each convolution and its ReLU.
    rng : None, int or numpy.random.Generator
        Seed of the He-normal initialisation (biases start at zero; the
        output layer's weights LeCun-normal, std ``1 / sqrt(fan_in)``).
    dtype : float64 (default) or float32

    Returns
    -------
    Sequential
        With the defaults: ``conv1, pool1, bn1, relu1, conv2, pool2, bn2,
        relu2, conv3, bn3, relu3, conv4, bn4, relu4, conv5, bn5, relu5, gap, fc``.

    Shapes
    ------
    x : (N, in_channels, H, W) -> scores : (N, num_classes). The feature map
    (the last ReLU) is ``(N, widths[-1], H // 2**num_pools, W // 2**num_pools)``:
    8x8 for 32x32 inputs with the defaults.

    Notes
    -----
    Why this shape: objects of up to 18 px must fit in the receptive field
    of one unit of the feature map (34 px with the defaults, against 18 px
    for three blocks with the same two pools), the 8x8 map is kept for
    the explanations by putting the extra blocks after the last pool, where
    they are cheap, and BatchNorm makes such a network trainable from scratch
    in a few epochs (without it the same network stays at chance for
    several epochs on ``shapes``).
    """
    in_channels, num_classes, widths, num_pools, dtype = _check_common(
        in_channels, num_classes, widths, num_pools, batch_norm, dtype
    )
    gen = as_generator(rng)
    layers = _blocks(in_channels, widths, num_pools, batch_norm, gen, dtype)
    layers.append(("gap", GlobalAvgPool2d()))
    layers.append(("fc", _classifier(widths[-1], num_classes, gen, dtype)))
    return Sequential(layers)


def fc_net(
    in_channels=3,
    num_classes=4,
    widths=(16, 16, 32, 32, 64),
    num_pools=None,
    batch_norm=True,
    hidden=64,
    input_size=32,
    rng=None,
    dtype=np.float64,
):
    """Convolutional blocks, then a two-layer fully connected head (CAM does not apply).

    Parameters
    ----------
    in_channels, num_classes, widths, num_pools, batch_norm, rng, dtype
        As :func:`gap_net`.
    hidden : int, default 64
        Width of the hidden fully connected layer.
    input_size : int or (int, int), default 32
        Input height and width (the flattened map's size depends on it).

    Returns
    -------
    Sequential
        The blocks of :func:`gap_net`, then ``flatten, fc1, relu_fc1, fc2``.

    Shapes
    ------
    x : (N, in_channels, H, W) -> scores : (N, num_classes), with
    ``(H, W) = input_size``. ``fc1.W`` : (hidden, widths[-1] * h * w) for
    the ``h x w`` feature map (8x8 for 32x32 inputs).
    """
    in_channels, num_classes, widths, num_pools, dtype = _check_common(
        in_channels, num_classes, widths, num_pools, batch_norm, dtype
    )
    hidden = check_int(hidden, "hidden", minimum=1)
    h, w = check_pair(input_size, "input_size", minimum=1)
    gen = as_generator(rng)
    fh, fw = h // 2**num_pools, w // 2**num_pools
    if fh < 1 or fw < 1:
        raise ValueError(
            f"input_size {(h, w)} is too small for {num_pools} 2x2 pools: at least {2**num_pools} pixels per side"
        )
    layers = _blocks(in_channels, widths, num_pools, batch_norm, gen, dtype)
    layers.append(("flatten", Flatten()))
    layers.append(("fc1", Linear(widths[-1] * fh * fw, hidden, rng=gen, dtype=dtype)))
    layers.append(("relu_fc1", ReLU()))
    layers.append(("fc2", _classifier(hidden, num_classes, gen, dtype)))
    return Sequential(layers)


def embed_net(in_channels=3, dim=16, widths=(16, 16, 32, 32, 64), num_pools=None, batch_norm=True, rng=None,
              dtype=np.float64):
    """An embedding network: the blocks of :func:`gap_net`, GAP, a Linear to ``dim`` and L2 normalisation.

    Trained with a triplet loss (:func:`minicam.losses.triplet_loss`,
    :func:`minicam.embedding.fit_embedding`), it has no class scores: its
    output is a point on the unit sphere, compared to others by cosine
    similarity (Schroff et al. 2015; Chen et al. 2020, "Adapting Grad-CAM
    for Embedding Networks", explain it with :mod:`minicam.explain.embedding`).

    Parameters
    ----------
    in_channels : int, default 3
    dim : int, default 16
        Embedding size D.
    widths, num_pools, batch_norm, rng, dtype
        As :func:`gap_net`.

    Returns
    -------
    Sequential
        The blocks of :func:`gap_net`, then ``gap, fc, l2norm``.

    Shapes
    ------
    x : (N, in_channels, H, W) -> embeddings : (N, dim), each row of norm 1.
    The feature map (the last ReLU) is that of :func:`gap_net`: 8x8 for 32x32.
    """
    dim = check_int(dim, "dim", minimum=1)
    in_channels, dim, widths, num_pools, dtype = _check_common(in_channels, dim, widths, num_pools, batch_norm, dtype)
    gen = as_generator(rng)
    layers = _blocks(in_channels, widths, num_pools, batch_norm, gen, dtype)
    layers.append(("gap", GlobalAvgPool2d()))
    layers.append(("fc", _classifier(widths[-1], dim, gen, dtype)))  # feeds a normalisation, not a ReLU
    layers.append(("l2norm", L2Normalize()))
    return Sequential(layers)


ARCHITECTURES = {"gap": gap_net, "fc": fc_net, "embed": embed_net}
"""Architectures by the name the command line uses (``--model gap|fc|embed``).

The ImageNet builders are in :data:`IMAGENET_ARCHITECTURES` instead: ``train``
calls these builders as ``(in_channels, num_classes, rng=, dtype=)`` on 32x32
images, which the ImageNet networks (3 input channels, AlexNet's 63-pixel
minimum) do not take."""


# ----------------------------------------------------------------------------
# Bundled models
# ----------------------------------------------------------------------------

# The datasets the command line trains on: the generator's keyword
# arguments for training data, and the held-out data each model is scored on
# (by the training command and by ``evaluate-model``). Training images come
# from a generator seeded by ``SeedSequence(seed).spawn(...)``, a stream no
# plain int seed such as 123 reproduces, so held-out images are never
# training images; for digits, ``split="test"`` also holds out the handwriting.
TRAINING_DATA = {
    "shapes": {"train_kwargs": {}, "heldout": {"n": 500, "seed": 123, "kwargs": {}}},
    "digits": {"train_kwargs": {"split": "train"}, "heldout": {"n": 1000, "seed": 123, "kwargs": {"split": "test"}}},
}

# What each bundled model is and how it was made. The same facts (class
# names, input shape, dataset, command) are stored in each file's metadata;
# a test checks that the two agree. ``heldout_accuracy`` is the figure the
# training command printed, on ``heldout`` data no training image comes from.
PRETRAINED = {
    "shapes-gap": {
        "file": "shapes-gap.npz",
        "architecture": "gap",
        "dataset": "shapes",
        "dataset_kwargs": TRAINING_DATA["shapes"]["train_kwargs"],
        "input_shape": [3, 32, 32],
        "class_names": ["circle", "square", "triangle", "cross"],
        "command": (
            "python -m minicam train --dataset shapes --model gap --epochs 5 --batch-size 16 --lr 0.003 --warmup 0 "
            "--seed 0 --n-train 6000 --out data/shapes-gap.npz"
        ),
        "heldout": TRAINING_DATA["shapes"]["heldout"],
        "heldout_accuracy": 0.974,
    },
    "shapes-fc": {
        "file": "shapes-fc.npz",
        "architecture": "fc",
        "dataset": "shapes",
        "dataset_kwargs": TRAINING_DATA["shapes"]["train_kwargs"],
        "input_shape": [3, 32, 32],
        "class_names": ["circle", "square", "triangle", "cross"],
        "command": (
            "python -m minicam train --dataset shapes --model fc --epochs 5 --batch-size 32 --lr 0.001 --warmup 1 "
            "--seed 0 --n-train 12000 --features-from data/shapes-gap.npz --out data/shapes-fc.npz"
        ),
        "heldout": TRAINING_DATA["shapes"]["heldout"],
        "heldout_accuracy": 0.982,
    },
    "digits-gap": {
        "file": "digits-gap.npz",
        "architecture": "gap",
        "dataset": "digits",
        "dataset_kwargs": TRAINING_DATA["digits"]["train_kwargs"],
        "input_shape": [1, 32, 32],
        "class_names": [str(d) for d in range(10)],
        "command": (
            "python -m minicam train --dataset digits --model gap --epochs 3 --batch-size 16 --lr 0.003 --warmup 0 "
            "--seed 0 --n-train 5000 --out data/digits-gap.npz"
        ),
        "heldout": TRAINING_DATA["digits"]["heldout"],
        "heldout_accuracy": 0.976,
    },
    # An embedding network (no class scores; labels only formed its triplets):
    # shapes-gap's frozen blocks, a 16-D head trained with the triplet loss.
    # Its "heldout_accuracy" is leave-one-out Recall@1 on the held-out images.
    "shapes-embed": {
        "file": "shapes-embed.npz",
        "architecture": "embed",
        "dataset": "shapes",
        "dataset_kwargs": TRAINING_DATA["shapes"]["train_kwargs"],
        "input_shape": [3, 32, 32],
        "class_names": ["circle", "square", "triangle", "cross"],
        "command": (
            "python -m minicam train --dataset shapes --model embed --epochs 5 --batch-size 64 --lr 0.003 "
            "--warmup 0 --seed 0 --n-train 3000 --features-from data/shapes-gap.npz --out data/shapes-embed.npz"
        ),
        "heldout": TRAINING_DATA["shapes"]["heldout"],
        "heldout_accuracy": 0.982,
    },
}


def pretrained_path(name):
    """A path to the bundled file of model ``name`` (installed package first, then the checkout's ``data/``)."""
    if not isinstance(name, str) or name not in PRETRAINED:
        raise ValueError(f"name must be one of the bundled models {sorted(PRETRAINED)}, got {name!r}")
    return bundled_file(PRETRAINED[name]["file"], f"rebuild it with: {PRETRAINED[name]['command']}")


def pretrained(name):
    """A bundled trained model, as float64 in eval mode.

    Parameters
    ----------
    name : {"shapes-gap", "shapes-fc", "digits-gap", "shapes-embed"}
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
