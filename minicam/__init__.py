"""minicam: a pure-NumPy reference for class activation maps.

A small CNN whose every layer has a hand-written forward and backward (with
a guided ReLU), and on it CAM, Grad-CAM, Guided Backpropagation and Guided
Grad-CAM written from the papers' equations.

Array conventions
-----------------
- Images and feature maps are NCHW. Conv weight ``W`` is ``(F, C, KH, KW)``,
  bias ``(F,)``. Linear weight ``W`` is ``(out_features, in_features)`` and
  ``y = x @ W.T + b``: PyTorch's layouts, so weights move between the two
  without transposes.
- float64 by default (gradient checks and identities hold to ~1e-12); every
  layer keeps its input's dtype, so float32 works for speed.
- Convolution is cross-correlation (no kernel flip) with zero padding.
  Max-pool drops leftover rows/columns (floor mode); on ties the gradient
  goes to the first maximum in row-major order of the window.
  ReLU'(0) = 0. Flatten is channel-major (NCHW order).
- No global random state: every initializer and generator takes a seed or a
  ``numpy.random.Generator``.
- No function writes into its arguments.
"""

from . import datasets, diagnose, exercises, functional, gradcheck, io, layers, losses, metrics, optim, recipes, train, zoo
from ._validate import StateError
from ._version import __version__
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    L2Normalize,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
)
from .losses import log_softmax, softmax, softmax_cross_entropy, triplet_loss
from .model import Residual, Sequential
from . import viz  # figures: imports matplotlib only when one of its functions is called
from . import explain
from .explain import (
    cam,
    class_target,
    deconvnet,
    eigen_cam,
    grad_cam,
    grad_cam_plus_plus,
    guided_backprop,
    guided_grad_cam,
    hires_cam,
    layer_cam,
    normalize,
    occlusion,
    saliency,
    saliency_map,
    score_cam,
    similarity_target,
    smoothgrad,
    upsample,
    xgrad_cam,
)


__all__ = [
    # explanations (minicam.explain)
    "cam",
    "class_target",
    "deconvnet",
    "eigen_cam",
    "explain",
    "grad_cam",
    "grad_cam_plus_plus",
    "guided_backprop",
    "guided_grad_cam",
    "hires_cam",
    "layer_cam",
    "normalize",
    "occlusion",
    "saliency",
    "saliency_map",
    "score_cam",
    "similarity_target",
    "smoothgrad",
    "upsample",
    "xgrad_cam",
    # foundation
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "L2Normalize",
    "Layer",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sequential",
    "Residual",
    "StateError",
    "datasets",
    "diagnose",
    "exercises",
    "functional",
    "gradcheck",
    "io",
    "layers",
    "log_softmax",
    "losses",
    "metrics",
    "softmax",
    "softmax_cross_entropy",
    "triplet_loss",
    "optim",
    "recipes",
    "train",
    "viz",
    "zoo",
]
