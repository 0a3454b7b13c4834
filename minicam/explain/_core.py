"""Shared machinery of the explanation methods: each rule of the conventions, once.

Input checks (model, ``x``, ``layer``, ``class_idx``, ``score``), the forward
pass that resolves the explained target, and a guard that leaves the model as
it was found. Every method in :mod:`minicam.explain` is built on these, and so
are the figures, the commands, the metrics and the PyTorch bridge: each rule
below lives here and nowhere else.

==================================  =========================================
rule                                function
==================================  =========================================
the default feature map             :func:`last_feature_layer` (the last node
                                    whose output is 4-D and not pooled)
a ``layer=`` argument               :func:`check_layer_name`,
                                    :func:`resolve_layer`
does CAM apply                      :func:`cam_head`, :func:`cam_applies`
                                    (GAP -> Linear after the layer, or
                                    AdaptiveAvgPool2d(1) -> Flatten ->
                                    Linear; Dropout allowed between them
                                    when it is the identity: eval mode or
                                    ``p = 0``)
a ``class_idx=`` argument           :func:`resolve_class_idx`
the model is left as it was found   :func:`untouched`
==================================  =========================================

Conventions:

- the explained quantity is a function of the model's **last output**
  (whatever its last layer is), chosen by ``class_idx`` and ``score``, or by a
  custom ``target`` callable (see :mod:`minicam.explain.targets`);
- one forward and one backward pass per batch: the upstream gradient has one
  row per sample, so a batch gives per-sample maps;
- the model runs in the mode it is in (train/eval is never switched).
"""

import contextlib
import numbers

import numpy as np

from .._validate import check_batch, check_float_array, check_float_dtype
from ..layers import AdaptiveAvgPool2d, AvgPool2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d
from ..model import Residual, Sequential
from .targets import SCORES, ClassScore, evaluate_target

__all__ = [
    "require_sequential",
    "check_input",
    "check_score",
    "check_target_args",
    "last_feature_layer",
    "check_layer_name",
    "resolve_layer",
    "cam_head",
    "cam_applies",
    "resolve_class_idx",
    "resolve_target",
    "forward_target",
    "untouched",
    "layer_gradients",
]


def require_sequential(model):
    """Refuse anything but a :class:`minicam.Sequential`."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    return model


def check_input(model, x, image=False):
    """Check that ``x`` is a float batch the model accepts; return each layer's output shape.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, ...)
        A batch (N >= 1) of what the model's first layer takes.
    image : bool
        Also require a 4-D image batch (N, C, H, W).

    Returns
    -------
    list of (name, shape)
        :meth:`Sequential.output_shapes` for ``x.shape`` (nothing is computed).
    """
    require_sequential(model)
    check_float_array(x, "x", ndim=4 if image else None)
    check_float_dtype(x.dtype, "x's dtype")  # float16 / longdouble: not a precision the layers are checked in
    check_batch(x, min_ndim=2)
    try:
        return model.output_shapes(x.shape)
    except ValueError as err:
        raise ValueError(f"x of shape {x.shape} does not fit the model: {err}") from None


def check_score(score):
    """``score`` must be one of :data:`SCORES`."""
    if not isinstance(score, str) or score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return score


def check_target_args(class_idx, score, target, default_score="logit"):
    """Either ``class_idx`` (+ ``score``) or a ``target`` callable, not both."""
    check_score(score)
    if target is None:
        return
    if not callable(target):
        raise TypeError(f"target must be a callable scores -> (value, dscores), got {type(target).__name__}")
    if class_idx is not None:
        raise ValueError(
            f"give class_idx or target, not both: target defines what is explained (got class_idx={class_idx!r})"
        )
    if score != default_score:
        raise ValueError(f"score applies to class scores; with a target it must stay {default_score!r}, got {score!r}")


POOLING_TYPES = (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, GlobalAvgPool2d)
"""Layers that pool a feature map: never the default feature map of a CAM method."""


def _pooled(node):
    # A node whose output is a pooling layer's output (a Sequential ending in one).
    if isinstance(node, Sequential):
        return _pooled(node.layers[-1])
    return isinstance(node, POOLING_TYPES)


def last_feature_layer(model, shapes):
    """Name of the last node whose output is a 4-D feature map that no pooling layer made, or None.

    The default ``layer`` of every CAM method: the last convolutional
    stage's rectified maps, the layer the Grad-CAM paper explains (Sec. 3:
    "the last convolutional layers"). A max-pool or average-pool after it
    (VGG's ``features[-1]``, the head's ``AdaptiveAvgPool2d``) only summarises
    those maps at a coarser grid, so it is skipped. Containers count: a
    ResNet's default is its stage ``layer4`` (the output of its last block),
    VGG-16's is ``features.29``, the ReLU before the last max-pool.

    Parameters
    ----------
    model : Sequential
    shapes : list of (name, shape)
        :meth:`Sequential.output_shapes` for the input's shape (a container
        after its children, so the last match is the outermost name).
    """
    four_d = [name for name, shape in shapes if len(shape) == 4 and not _pooled(model[name])]
    return four_d[-1] if four_d else None


def check_layer_name(model, layer, model_label="the model"):
    """``layer`` if it is the name (str) of a layer of ``model``; else a TypeError/ValueError saying so.

    ``model_label`` names the model in the message (e.g. a bundled model's name).
    """
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {layer!r} ({type(layer).__name__})")
    if layer not in model:
        raise ValueError(f"layer must name a layer of {model_label}, one of {model.names}, got {layer!r}")
    return layer


def resolve_layer(model, shapes, layer):
    """Name of the feature-map layer: ``layer`` checked, or the last layer with a 4-D output.

    Parameters
    ----------
    model : Sequential
    shapes : list of (name, shape), from :func:`check_input`
    layer : str or None

    Returns
    -------
    str
    """
    if layer is None:
        found = last_feature_layer(model, shapes)
        if found is None:
            raise ValueError(
                "layer=None picks the last layer with a 4-D output (N, K, h, w) that is not a pooling layer, but "
                "no layer of this model "
                f"outputs one (output shapes: {shapes}); a CAM method needs a feature map"
            )
        return found
    check_layer_name(model, layer)
    shape = dict(shapes)[layer]
    if len(shape) != 4:
        four_d = [name for name, s in shapes if len(s) == 4]
        raise ValueError(
            f"layer must output a 4-D feature map (N, K, h, w) for a CAM method; layer {layer!r} outputs shape "
            f"{shape}. Layers with a 4-D output: {four_d}"
        )
    return layer


def _is_identity(layer):
    # Dropout is the identity in eval mode, and with p = 0 in either mode.
    return isinstance(layer, Dropout) and (not layer.training or layer.p == 0.0)


def _after(model, layer):
    """``(name, node)`` of what runs after ``layer``'s output, Sequentials opened; None inside a Residual block.

    Inside a residual block a layer's output does not reach the head along
    one chain (the block adds the shortcut to it), so CAM cannot apply there.
    """
    rest, node, prefix = [], model, ""
    for part in layer.split("."):
        if isinstance(node, Residual):
            return None
        items = node.items()
        i = [n for n, _ in items].index(part)
        rest = [(prefix + n, child) for n, child in items[i + 1 :]] + rest
        node, prefix = items[i][1], prefix + part + "."
    opened = []
    for name, child in rest:
        if isinstance(child, Sequential) and not any(isinstance(c, Residual) for _, c in child.named_nodes()):
            opened += list(child.named_layers(name + "."))
        else:
            opened.append((name, child))  # a layer, or a container holding a block: not a CAM head
    return opened


def _is_global_pool(lay):
    return isinstance(lay, AdaptiveAvgPool2d) and tuple(lay.output_size) == (1, 1)


def cam_head(model, layer):
    """The ``Linear`` of the GAP -> Linear head right after ``layer``, or a ValueError saying why CAM does not apply.

    CAM (Zhou et al. 2016, Sec. 2) reads its channel weights ``w^c_k`` from
    the last Linear, which is exact only when the class score is
    ``y^c = sum_k w^c_k mean_ij A^k_ij + b^c``: the layers after ``layer``
    must be ``GlobalAvgPool2d`` then ``Linear`` (the last layer), or
    PyTorch's spelling of the same head, ``AdaptiveAvgPool2d(1)`` then
    ``Flatten`` then ``Linear`` (torchvision's ResNets), with only identity
    Dropouts (eval mode, or ``p = 0``) in between.

    Parameters
    ----------
    model : Sequential
    layer : str
        A layer name of ``model`` (dotted for a layer inside a container).

    Returns
    -------
    Linear
    """
    check_layer_name(model, layer)
    after = _after(model, layer)
    if after is None:
        raise ValueError(
            f"cam needs a GAP -> Linear head right after layer {layer!r}, but {layer!r} is inside a residual block: "
            "its output is added to the shortcut before it reaches the head. Explain the block (or its stage) "
            "instead, or use grad_cam."
        )
    kept = [(name, lay) for name, lay in after if not _is_identity(lay)]
    if len(kept) == 2 and isinstance(kept[0][1], GlobalAvgPool2d) and isinstance(kept[1][1], Linear):
        return kept[1][1]
    if (len(kept) == 3 and _is_global_pool(kept[0][1]) and isinstance(kept[1][1], Flatten)
            and isinstance(kept[2][1], Linear)):
        return kept[2][1]

    def describe(name, lay):
        mode = (", training" if lay.training else ", eval") if isinstance(lay, Dropout) else ""
        return f"{name} ({type(lay).__name__}{mode})"

    desc = " -> ".join(describe(n, lay) for n, lay in after)
    raise ValueError(
        f"cam needs a GAP -> Linear head right after layer {layer!r}: the remaining layers must be "
        "GlobalAvgPool2d then Linear (or AdaptiveAvgPool2d(1), Flatten, Linear), the last layer (Dropout in eval "
        "mode is allowed between them), because CAM "
        f"reads its channel weights w^c_k from that Linear. After {layer!r} this model has: {desc or 'nothing'}. "
        "Grad-CAM works on any head: use grad_cam (on a GAP -> Linear head its signed map equals CAM / (h*w))."
    )


def cam_applies(model, layer):
    """True when :func:`cam_head` finds a GAP -> Linear head after ``layer`` (CAM can be computed)."""
    check_layer_name(model, layer)  # an unknown layer is an error, not "no"
    try:
        cam_head(model, layer)
    except ValueError:
        return False
    return True


def resolve_class_idx(class_idx, scores):
    """``class_idx`` as an int array of shape (N,), checked against ``scores`` (N, M).

    Parameters
    ----------
    class_idx : int, sequence of N ints, ndarray of N ints, or None
        ``None`` is the predicted class ``argmax_c scores[n, c]`` of each sample.
    scores : ndarray, shape (N, M)
        The model's output.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    if scores.ndim != 2:
        raise ValueError(
            f"class_idx selects a column of the model's output, which must be 2-D (N, M); this model outputs "
            f"shape {scores.shape}. Explain another quantity with target=..."
        )
    n, m = scores.shape
    if class_idx is None:
        return scores.argmax(axis=1)
    if isinstance(class_idx, (bool, np.bool_)):
        raise TypeError(f"class_idx must be an int or a sequence of ints, got {class_idx!r}")
    if isinstance(class_idx, numbers.Integral):
        idx = np.full(n, int(class_idx), dtype=np.int64)
    else:
        if isinstance(class_idx, (str, bytes)) or not hasattr(class_idx, "__len__"):
            raise TypeError(
                f"class_idx must be an int, a sequence of N ints or None, got {class_idx!r} ({type(class_idx).__name__})"
            )
        arr = np.asarray(class_idx)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"class_idx must hold one class per sample (N={n}), got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"class_idx must hold ints, got {class_idx!r} (dtype {arr.dtype})")
        idx = arr.astype(np.int64)
    bad = (idx < 0) | (idx >= m)
    if bad.any():
        raise ValueError(f"class_idx must be in [0, {m}) for a model with {m} outputs, got {int(idx[bad][0])}")
    return idx


def resolve_target(scores, class_idx, score, target):
    """The callable that defines what is explained, fixed on the clean forward's ``scores``.

    With ``class_idx=None`` the predicted classes are read from ``scores`` here,
    once, so later forward passes on perturbed inputs (Score-CAM, occlusion,
    SmoothGrad) keep explaining the same classes.
    """
    if target is not None:
        return target
    return ClassScore(resolve_class_idx(class_idx, scores), score)


def forward_target(model, x, class_idx, score, target, cache=True):
    """One forward pass; return ``(scores, target, value, dscores)``.

    ``cache`` is passed to :meth:`Sequential.forward`: ``True`` for a backward
    to the input, a layer name for one that stops there, ``False`` for none.

    ``value`` (N,) is the explained quantity per sample and ``dscores`` its
    gradient with respect to the model's output (one row per sample).
    """
    scores = model.forward(x, cache=cache)
    tgt = resolve_target(scores, class_idx, score, target)
    value, dscores = evaluate_target(tgt, scores)
    return scores, tgt, value, dscores


@contextlib.contextmanager
def untouched(model):
    """Run a block and leave ``model`` as it was: mode, parameters, gradients, buffers, caches.

    An explanation runs forward and backward passes, which overwrite
    ``model.outputs``, each layer's cache and ``grads``, and (in training mode)
    BatchNorm's running statistics. All of these are put back afterwards
    (:meth:`Sequential.snapshot` / :meth:`Sequential.restore`), so explaining
    between a ``backward`` and an optimiser step, or on a model in training
    mode, changes nothing. (In training mode, Dropout still draws its masks
    from its own generator, which advances.) The mode itself is never
    switched: the passes run in whatever mode the model is in.
    """
    saved = model.snapshot()
    try:
        yield
    finally:
        model.restore(saved)


def layer_gradients(model, x, class_idx=None, layer=None, score="logit", target=None):
    """Feature maps of ``layer`` and the gradient of the explained score with respect to them.

    The building block of every gradient-based CAM: one forward pass, one
    backward pass stopped at ``layer``.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, ...)
        Input batch the model accepts (e.g. (N, C, H, W)).
    class_idx : int, sequence of N ints, or None
        Class explained for each sample; ``None`` is the predicted class.
    layer : str, optional
        Layer whose **output** is ``A``; it must be 4-D. Default: the last
        layer whose output is 4-D.
    score : {"logit", "softmax", "log_softmax"}
        What is differentiated: the logit ``y^c``, the probability ``p_c`` or
        ``log p_c`` of the model's last output.
    target : callable, optional
        ``target(scores) -> (value (N,), dscores)`` instead of ``class_idx`` /
        ``score`` (e.g. :func:`minicam.explain.similarity_target`).

    Returns
    -------
    A : ndarray, shape (N, K, h, w)
        The layer's output.
    dA : ndarray, shape (N, K, h, w)
        ``dA[n, k, i, j] = d value_n / d A[n, k, i, j]``.
    """
    check_target_args(class_idx, score, target)
    shapes = check_input(model, x)
    layer = resolve_layer(model, shapes, layer)
    with untouched(model):
        _, _, _, dscores = forward_target(model, x, class_idx, score, target, cache=layer)
        A = model.outputs[layer]
        dA = model.backward(dscores, stop_at=layer, param_grads=False)
    return A, dA
