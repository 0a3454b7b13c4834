"""Side by side with PyTorch: one explanation through minicam and through captum/autograd.

- :func:`compare`: the same weights and input through both; the differences
  per quantity (logits, input gradient, layer output and gradient, the map).
- :func:`check_torch`: ``python -m minicam check-torch``: load a user's
  model file (and state dict), run :func:`compare` on a seeded random input,
  print the report.
- :data:`METHODS`: the methods it compares.

Importing this module does not import torch (the command line reads
:data:`METHODS` from here without it); the functions import it, with
:mod:`minicam.interop.torch` (the conversion), when called.
"""

import numpy as np

from .._validate import as_generator, check_float, check_float_array, check_float_dtype, check_int
from ..explain._core import check_layer_name, resolve_class_idx, resolve_layer

__all__ = ["METHODS", "DEFAULT_RTOL", "compare", "check_torch", "load_model_file", "parse_shape", "format_report"]

METHODS = ("grad-cam", "saliency", "guided-backprop", "deconvnet", "guided-grad-cam")
"""What :func:`compare` (and ``check-torch --method``) can compare."""
_CAM_METHODS = ("grad-cam", "guided-grad-cam")


def _diff(quantity, mine, theirs):
    """One report row: shape, largest magnitude, max |a - b| and the norm-wise relative difference."""
    a = np.asarray(mine, dtype=np.float64)
    b = theirs.detach().cpu().numpy().astype(np.float64) if hasattr(theirs, "detach") else np.asarray(theirs, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{quantity}: shapes differ, minicam {a.shape}, torch {b.shape}")
    abs_diff = float(np.abs(a - b).max()) if a.size else 0.0
    scale = max(float(np.abs(a).max()), float(np.abs(b).max())) if a.size else 0.0
    return {
        "quantity": quantity,
        "shape": a.shape,
        "scale": scale,
        "abs": abs_diff,
        "rel": abs_diff / scale if scale > 0 else 0.0,
    }


def _resolve_layer(model, shapes, layer, names, method):
    """The explained layer: a minicam name or a torch path, by explain's rules (4-D for the CAM methods)."""
    if isinstance(layer, str) and layer not in names and layer not in model:
        by_path = {}
        for name, path in names.items():
            by_path.setdefault(path, []).append(name)
        if layer not in by_path:
            raise ValueError(
                f"layer must be a minicam layer name or the torch module path of one (e.g. {list(names)[:8]}); "
                f"got {layer!r}"
            )
        layer = by_path[layer][0]
    if layer is None or method in _CAM_METHODS:
        layer = resolve_layer(model, shapes, layer)
    else:
        check_layer_name(model, layer)  # saliency & co. compare any layer's output and gradient
    path = names.get(layer)
    calls = [name for name, p in names.items() if p == path]
    if path is None:
        raise ValueError(f"layer {layer!r} has no torch module of its own (it is a block made of an addition); "
                         "captum hooks modules: choose a module's layer")
    if len(calls) > 1:
        raise ValueError(
            f"layer {layer!r} is one of {len(calls)} calls of the torch module {path!r} ({calls}); a hook on that "
            "module cannot tell its calls apart, so it cannot be compared: choose another layer (e.g. the block "
            "that contains it)"
        )
    return layer


def compare(module, x, method="grad-cam", layer=None, class_idx=None):
    """Run one explanation through minicam and through captum/autograd, on the same weights and input.

    Parameters
    ----------
    module : torch.nn.Module
        The model to check, any module :func:`~minicam.interop.torch.from_torch`
        converts (not modified: a copy in ``x``'s dtype is used,
        in the train/eval mode ``module`` is in). Refused if a Dropout with
        ``p > 0`` is in training mode (random masks cannot be compared).
    x : ndarray, shape (N, C, H, W), float64 or float32
        The input; both computations run in its dtype.
    method : one of :data:`METHODS`
        ``"grad-cam"`` (captum ``LayerGradCam``, with and without its ReLU),
        ``"saliency"`` (``Saliency(abs=False)``), ``"guided-backprop"``
        (``GuidedBackprop``), ``"deconvnet"`` (``Deconvolution``),
        ``"guided-grad-cam"`` (``GuidedGradCam``, nearest upsampling, so the
        input size should be a multiple of the map's; see
        :func:`minicam.upsample`).
    layer : str, optional
        minicam layer name or torch module path (the same for all but
        reused modules, e.g. ``features.3``, ``layer4``) of the feature map
        A. Default: :func:`minicam.explain.last_feature_layer`.
    class_idx : int, sequence of N ints, or None
        The explained class per sample (``None``: minicam's predicted class).

    Returns
    -------
    rows : list of dict
        One per quantity: ``quantity``, ``shape``, ``scale`` (largest
        magnitude), ``abs`` (max |minicam - torch|), ``rel`` (``abs / scale``).
        Quantities: ``logits``, ``input gradient`` (d y^c / d x),
        ``layer output`` (A), ``layer gradient`` (d y^c / dA) -- minicam's
        forward and backward against plain ``torch.autograd`` -- then the
        method's map(s) against captum.
    info : dict
        ``layer``, ``torch_layer``, ``class_idx`` (ndarray (N,)), ``model``
        (the minicam model, from :func:`from_torch`).

    Raises
    ------
    TypeError, ValueError
        Unsupported modules or options (naming them), an input shape that
        does not fit the model (naming the layer), a bad layer or class.
    """
    import copy

    import torch
    from torch import nn

    from .torch import from_torch, layer_map, torch_dtype

    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_float_array(x, "x", ndim=4)
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    tdt = torch_dtype(x.dtype)
    ref = copy.deepcopy(module).to(dtype=tdt)
    for mod in ref.modules():
        if type(mod) in (nn.ReLU, nn.Dropout):
            # an in-place ReLU would overwrite the hooked output of the layer before it;
            # same arithmetic out of place
            mod.inplace = False
    for path, mod in ref.named_modules():
        if type(mod) is nn.Dropout and mod.training and mod.p > 0:
            raise ValueError(
                f"{path} (Dropout) is in training mode: its random masks differ between frameworks; "
                "call module.eval() (or set that Dropout to eval) before comparing"
            )
    names = layer_map(ref)
    model = from_torch(ref, dtype=x.dtype, rng=0)
    try:
        shapes = model.output_shapes(x.shape)
    except ValueError as err:
        raise ValueError(f"an input of shape {tuple(x.shape)} does not fit the model: {err}") from None
    layer = _resolve_layer(model, shapes, layer, names, method)
    modules = dict(ref.named_modules())
    if names[layer] not in modules:
        raise ValueError(f"layer {layer!r} is computed by a function in the forward (fx node {names[layer]!r}), "
                         "not by a module; captum hooks modules: choose a module's layer")
    torch_layer = modules[names[layer]]

    scores = model.forward(x)
    idx = resolve_class_idx(class_idx, scores)
    onehot = np.zeros_like(scores)
    onehot[np.arange(x.shape[0]), idx] = 1.0
    dx = model.backward(onehot)
    A = model.outputs[layer]
    dA = model.backward(onehot, stop_at=layer)

    store = {}

    def keep_output(_mod, _inp, out):
        out.retain_grad()
        store["A"] = out

    handle = torch_layer.register_forward_hook(keep_output)
    try:
        xt = torch.tensor(x, requires_grad=True)
        logits = ref(xt)
        logits[torch.arange(x.shape[0]), torch.as_tensor(idx)].sum().backward()
    finally:
        handle.remove()
    rows = [
        _diff("logits", scores, logits),
        _diff("input gradient", dx, xt.grad),
        _diff("layer output", A, store["A"]),
        _diff("layer gradient", dA, store["A"].grad),
    ]

    import warnings

    import captum.attr as ca

    target = torch.as_tensor(idx)
    with warnings.catch_warnings():
        # captum announces the ReLU hooks of guided backprop / deconvnet on every call
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        rows += _captum_rows(ca, method, ref, torch_layer, x, target, model, idx, layer)
    info = {"layer": layer, "torch_layer": names[layer], "class_idx": idx, "model": model}
    return rows, info


def _captum_rows(ca, method, ref, torch_layer, x, target, model, idx, layer):
    import torch

    from ..explain.cams import grad_cam
    from ..explain.gradients import deconvnet, guided_backprop, guided_grad_cam, saliency

    rows = []

    def fresh():
        return torch.tensor(x, requires_grad=True)

    if method == "grad-cam":
        for relu in (True, False):
            theirs = ca.LayerGradCam(ref, torch_layer).attribute(fresh(), target=target, relu_attributions=relu)
            rows.append(_diff(f"Grad-CAM map{'' if relu else ', signed'} (captum LayerGradCam)",
                              grad_cam(model, x, idx, layer=layer, relu=relu), theirs[:, 0]))
    elif method == "saliency":
        theirs = ca.Saliency(ref).attribute(fresh(), target=target, abs=False)
        rows.append(_diff("saliency (captum Saliency, abs=False)", saliency(model, x, idx), theirs))
    elif method == "guided-backprop":
        theirs = ca.GuidedBackprop(ref).attribute(fresh(), target=target)
        rows.append(_diff("guided backprop (captum GuidedBackprop)", guided_backprop(model, x, idx), theirs))
    elif method == "deconvnet":
        theirs = ca.Deconvolution(ref).attribute(fresh(), target=target)
        rows.append(_diff("deconvnet (captum Deconvolution)", deconvnet(model, x, idx), theirs))
    else:
        theirs = ca.GuidedGradCam(ref, torch_layer).attribute(fresh(), target=target)
        rows.append(_diff("Guided Grad-CAM, nearest (captum GuidedGradCam)",
                          guided_grad_cam(model, x, idx, layer=layer, interpolation="nearest"), theirs))
    return rows


# ---------------------------------------------------------------------------
# The check-torch command
# ---------------------------------------------------------------------------

DEFAULT_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def load_model_file(path, builder="build_model"):
    """The ``nn.Sequential`` defined by a user's Python file.

    Parameters
    ----------
    path : str or path-like
        A Python file; it is executed (as ``python path`` would, but not as
        ``__main__``).
    builder : str
        Name in that file of a function returning the model (called without
        arguments) or of a module-level ``nn.Module`` variable.

    Returns
    -------
    torch.nn.Module
    """
    import os
    import runpy

    from torch import nn

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path!r}")
    try:
        namespace = runpy.run_path(path, run_name="minicam_check_torch_model")
    except Exception as err:  # the user's code: a syntax error or any exception it raises is bad input
        raise ValueError(f"model file {path!r} failed to run: {type(err).__name__}: {err}") from err
    if builder not in namespace:
        found = sorted(k for k, v in namespace.items() if not k.startswith("_") and (callable(v) or isinstance(v, nn.Module)))
        raise ValueError(f"{path} defines no {builder!r} (use --builder to name the function or variable); it defines {found}")
    obj = namespace[builder]
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise TypeError(f"{builder!r} in {path} must be a function returning an nn.Module, or an nn.Module; got {type(obj).__name__}")
        try:
            obj = obj()
        except Exception as err:
            raise ValueError(f"{builder}() in {path} raised {type(err).__name__}: {err}") from err
    if not isinstance(obj, nn.Module):
        raise TypeError(f"{builder}() in {path} must return a torch.nn.Module, got {type(obj).__name__}")
    return obj


def parse_shape(text):
    """``"2,3,32,32"`` (or ``2x3x32x32``) -> ``(2, 3, 32, 32)``: an image batch shape (N, C, H, W)."""
    parts = str(text).replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"input shape must be 4 integers N,C,H,W like 2,3,32,32, got {text!r}") from None
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input shape must be 4 positive integers N,C,H,W like 2,3,32,32, got {text!r}")
    return shape


def format_report(rows, rtol):
    """The side-by-side table of :func:`compare`'s rows; returns ``(text, number of failures)``."""
    header = ("quantity", "shape", "max |value|", "max abs diff", "rel diff", "result")
    table = []
    failures = 0
    for row in rows:
        ok = row["rel"] <= rtol
        failures += not ok
        table.append((row["quantity"], "x".join(map(str, row["shape"])), f"{row['scale']:.3e}",
                      f"{row['abs']:.3e}", f"{row['rel']:.3e}", "PASS" if ok else "FAIL"))
    widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
    line = "  ".join("{:<%d}" % widths[0] if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    out = [line.format(*header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line.format(*r) for r in table]
    out.append(out[1])
    out.append(f"{len(rows) - failures} passed, {failures} failed  (relative difference max|minicam - torch| / max|value|, "
               f"tolerance {rtol:.0e})")
    return "\n".join(out), failures


def check_torch(model_file, input_shape, builder="build_model", state_dict=None, method="grad-cam", layer=None,
                class_idx=None, seed=0, dtype=np.float64, rtol=None, file=None):
    """``python -m minicam check-torch``: compare a user's PyTorch model with minicam; print the report.

    Parameters
    ----------
    model_file : path of a Python file defining the model (see :func:`load_model_file`)
    input_shape : (N, C, H, W) or a string ``"N,C,H,W"``
    builder : str, default ``"build_model"``
    state_dict : path of a ``torch.save``'d state dict, optional
    method, layer, class_idx
        As :func:`compare`.
    seed : int
        Seed of the random normal input, and of PyTorch's generator while the
        model file runs (so weights initialised there are reproducible).
    dtype : float64 (default) or float32
    rtol : float, optional
        Largest accepted relative difference (default 1e-10 in float64, 1e-4 in float32).
    file : text stream, default standard output

    Returns
    -------
    int
        0 when every quantity agrees within ``rtol``, 1 otherwise.
    """
    import sys

    # every argument is checked before torch is imported and the user's file runs
    out = sys.stdout if file is None else file
    dt = check_float_dtype(dtype)
    rtol = DEFAULT_RTOL[dt] if rtol is None else check_float(rtol, "rtol", low=0.0, low_inclusive=False)
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")

    import torch

    from .torch import load_state_dict
    with torch.random.fork_rng():
        # a builder that initialises randomly gives the same weights for the same seed;
        # the caller's global generator is left as it was
        torch.manual_seed(int(seed))
        module = load_model_file(model_file, builder)
    if state_dict is not None:
        load_state_dict(module, state_dict)
    module.eval()  # explained as for inference; Dropout masks could not be compared anyway
    x = as_generator(seed).standard_normal(shape).astype(dt)
    rows, info = compare(module, x, method=method, layer=layer, class_idx=class_idx)
    model = info["model"]
    print(f"check-torch: {model_file} ({builder}){' + ' + str(state_dict) if state_dict else ''}", file=out)
    print(f"imported with minicam.interop.torch.from_torch: {sum(1 for _ in model.named_layers())} layers, "
          f"{model.num_params:,} parameters, "
          f"eval mode, {dt.name}", file=out)
    print(f"input: standard normal {shape}, seed {seed}; method {method}; layer {info['layer']!r} "
          f"(torch {info['torch_layer']!r}); class {info['class_idx'].tolist()}", file=out)
    print(f"torch {torch.__version__}, captum {_captum_version()}", file=out)
    print(file=out)
    text, failures = format_report(rows, rtol)
    print(text, file=out)
    return 1 if failures else 0


def _captum_version():
    import captum

    return captum.__version__
