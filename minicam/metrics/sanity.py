"""Checks a map must pass: the Grad-CAM = CAM / (h w) identity on GAP networks, and cascading
model-parameter randomization (Adebayo et al. 2018)."""

import copy

import numpy as np

from .._validate import as_generator
from ..explain._core import check_input, resolve_class_idx, untouched
from ..explain.cams import cam, grad_cam
from .faithfulness import rank_correlation
from .maps import explain_maps

__all__ = ["IDENTITY_TOL", "identity_error", "randomizable_layers", "cascading_randomization"]


# The identity holds to rounding (~1e-16 relative) in float64; anything near
# this limit is a bug, not noise.
IDENTITY_TOL = 1e-10


def identity_error(model, x, layer=None):
    """Largest ``|GradCAM_signed - CAM / (h w)|`` over the images and every class.

    Selvaraju et al. (2017), Sec. 3.1: on a network ending in global average
    pooling and one linear layer, ``dy^c/dA^k_ij = w_k^c / (h w)`` at every
    position, so ``alpha_k^c = w_k^c / (h w)`` and the signed Grad-CAM map is
    the CAM map divided by ``h w``.

    Parameters
    ----------
    model : minicam.Sequential
        A GAP -> Linear network.
    x : ndarray, shape (N, C, H, W)
    layer : str, optional
        Default: the last 4-D output.

    Returns
    -------
    error : float
        Max absolute difference over N images x M classes x h x w positions.
    scale : float
        Max ``|CAM / (h w)|`` over the same, to read the error against.
    map_shape : (int, int)
        ``(h, w)``.
    """
    num_classes = model.forward(x).shape[1]
    error = scale = 0.0
    for c in range(num_classes):
        signed = grad_cam(model, x, c, layer=layer, relu=False)  # (N, h, w)
        reference = cam(model, x, c, layer=layer) / (signed.shape[1] * signed.shape[2])
        error = max(error, float(np.abs(signed - reference).max()))
        scale = max(scale, float(np.abs(reference).max()))
    return error, scale, signed.shape[1:]




def randomizable_layers(model):
    """Names of the layers with a weight ``params["W"]`` (Conv2d, Linear), from the top down (dotted inside blocks)."""
    return [name for name, layer in reversed(list(model.named_layers())) if "W" in layer.params]


def cascading_randomization(model, method, x, class_idx, rng, layers=None, reduce="sum", return_maps=False):
    """Cascading model-parameter randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", Sec. 3.1).

    On a copy of the model (``model`` is untouched), the weight layers are
    re-initialised one after the other from the top (the logits) down,
    cumulatively; after each, the map of the same images and classes is
    compared with the trained model's by Spearman's rank correlation, of the
    maps and of their absolute values (the paper reports both). A method
    that explains the model should decorrelate as the layers it reads are
    randomised; a map that stays the same does not depend on what the
    model learned.

    Parameters
    ----------
    model : Sequential
    method : callable
        ``method(model, x, class_idx)``.
    x : ndarray, shape (N, C, H, W)
    class_idx : int, sequence of N ints, or None
        Fixed before any randomisation (None: the *trained* model's
        predictions), so every stage explains the same classes.
    rng : int or numpy.random.Generator
        Source of the new weights.
    layers : list of str, optional
        Randomised in this order; default :func:`randomizable_layers`
        (every Conv2d and Linear, top down). Each gets He-normal weights
        (the layers' own initialiser) and zero biases; BatchNorm keeps its
        trained scale, shift and running statistics.
    reduce : {"sum", "max-abs"}
        For input-space maps (N, C, H, W): the signed channel sum by default,
        so that "without absolute values" keeps the sign.
    return_maps : bool
        Also return the maps of every stage.

    Returns
    -------
    dict
        ``"layers"``: the names, in order; ``"spearman"``, ``"spearman_abs"``
        (L,): mean over images of rho(trained, randomised up to that layer),
        signed and absolute; ``"per_image"``, ``"per_image_abs"`` (L, N);
        ``"flat"`` (L,): share of randomised maps that are constant (rho is
        undefined there and counted as 0: a constant map keeps no ranking);
        ``"maps"`` (L + 1, N, H, W) with ``return_maps``: trained first.
    """
    check_input(model, x, image=True)
    gen = as_generator(rng)
    with untouched(model):
        idx = resolve_class_idx(class_idx, model.forward(x))
    if layers is None:
        layers = randomizable_layers(model)
    else:
        bad = [name for name in layers if name not in model or "W" not in getattr(model[name], "params", {})]
        if bad or not layers:
            raise ValueError(f"layers must name layers with weights, e.g. {randomizable_layers(model)}, got {layers!r}")
    work = copy.deepcopy(model)
    trained = explain_maps(work, method, x, idx, reduce=reduce)
    stages, rho, rho_abs, flat = [trained], [], [], []

    def rhos(a, b):
        r = np.array([rank_correlation(u, v) for u, v in zip(a, b)])
        return np.nan_to_num(r, nan=0.0)

    for name in layers:
        layer = work[name]
        W = layer.params["W"]
        fan_in = int(np.prod(W.shape[1:]))
        layer.params["W"] = (gen.standard_normal(W.shape) * np.sqrt(2.0 / fan_in)).astype(W.dtype)
        if "b" in layer.params:
            layer.params["b"] = np.zeros_like(layer.params["b"])
        m = explain_maps(work, method, x, idx, reduce=reduce)
        stages.append(m)
        rho.append(rhos(trained, m))
        rho_abs.append(rhos(np.abs(trained), np.abs(m)))
        flat.append(float(np.mean(m.reshape(len(m), -1).std(axis=1) == 0)))
    result = {"layers": list(layers), "spearman": np.mean(rho, axis=1), "spearman_abs": np.mean(rho_abs, axis=1),
              "per_image": np.array(rho), "per_image_abs": np.array(rho_abs), "flat": np.array(flat)}
    if return_maps:
        result["maps"] = np.stack(stages)
    return result
