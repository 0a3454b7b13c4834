"""Bridge to PyTorch: move a model both ways, and compare every number.

PyTorch is an optional dependency, imported only by this module (``import
minicam`` never imports it)::

    pip install torch==2.13.0 captum

Functions
---------
to_torch(model, dtype=torch.float64)
    A minicam :class:`~minicam.model.Sequential` (or one layer) as an
    equivalent ``torch.nn.Sequential`` whose top-level modules carry minicam's
    layer names, so ``getattr(torch_model, "conv3")`` is the layer minicam
    calls ``conv3`` -- the same layer for minicam's Grad-CAM and captum's.
from_torch(module, dtype=np.float64, rng=None)
    A ``torch.nn.Sequential`` of supported modules as a minicam model.
layer_map(module)
    minicam layer name -> dotted path of the torch module whose output is that
    layer's output (what ``from_torch`` names each layer).
load_state_dict(module, state)
    Load a PyTorch state dict, checking every key and shape first.

The side-by-side comparison (``compare``, ``check_torch``, the
``check-torch`` command) lives in :mod:`minicam.interop.compare`.

Correspondence of layers
------------------------
==========================  ==============================================
minicam                     PyTorch
==========================  ==============================================
``Conv2d``                  ``nn.Conv2d`` (square kernel, square int stride
                            and padding, ``padding="valid"``, or ``"same"``
                            with an odd kernel; ``bias=False`` becomes a zero
                            bias; dilation 1, groups 1, zero padding mode)
``ReLU``                    ``nn.ReLU`` (a module, not ``F.relu``: captum's
                            guided backprop and deconvnet hook ReLU modules)
``MaxPool2d``               ``nn.MaxPool2d`` (padding 0, dilation 1, floor
                            mode, no ``return_indices``)
``AvgPool2d``               ``nn.AvgPool2d`` (padding 0, floor mode, no
                            ``divisor_override``)
``GlobalAvgPool2d``         ``nn.AdaptiveAvgPool2d(1)`` followed by
                            ``nn.Flatten()``: torch's pool outputs
                            (N, C, 1, 1), minicam's (N, C), so the pair is one
                            minicam layer. ``to_torch`` writes it as a nested
                            ``nn.Sequential(pool, flatten)`` under the layer's
                            name.
``Flatten``                 ``nn.Flatten()`` (``start_dim=1, end_dim=-1``)
``Linear``                  ``nn.Linear`` (``bias=False`` -> zero bias)
``Dropout``                 ``nn.Dropout`` (not ``Dropout2d``)
``BatchNorm2d``             ``nn.BatchNorm2d`` (affine, tracking running
                            statistics, a float momentum)
==========================  ==============================================

Anything else -- another module type, a subclass, a custom container, or an
option minicam does not model -- is refused with a message naming the module
and the option. Parameters keep PyTorch's layouts (``W`` <-> ``weight``,
``b`` <-> ``bias``, ``gamma`` <-> ``weight``, ``beta`` <-> ``bias``), so
weights move without transposes.

Names
-----
``from_torch`` flattens nested ``nn.Sequential`` containers and names each
minicam layer after its torch path with ``"."`` replaced by ``"_"``
(``features.3`` -> ``features_3``); a name that would start with a digit gets
the prefix ``layer`` (the unnamed ``nn.Sequential(conv, relu)`` gives
``layer0``, ``layer1``), because minicam names are Python identifiers. A
``GlobalAvgPool2d`` made of an ``AdaptiveAvgPool2d(1)`` + ``Flatten`` pair is
named after the pool, or after the container when the pair is a nested
``nn.Sequential`` of its own (what ``to_torch`` writes), so
``from_torch(to_torch(m))`` keeps every name.

Train/eval state is per layer in both directions (a model may have BatchNorm
in training mode and Dropout in eval mode). Dropout masks are random in both
frameworks and never equal: compare train-mode Dropout by its rule, not by
its output.
"""

from collections import OrderedDict
import re

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "minicam.interop.torch needs PyTorch, an optional dependency of minicam: "
        "pip install torch==2.13.0 captum (a CPU-only build is enough; see requirements.txt)"
    ) from _err

from .._validate import as_generator, check_float_dtype
from ..layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
)
from ..model import Sequential

__all__ = [
    "to_torch",
    "from_torch",
    "layer_map",
    "load_state_dict",
    "torch_dtype",
]

# minicam parameter/buffer key -> torch attribute, per layer kind.
_PARAM_NAMES = {
    Conv2d: {"W": "weight", "b": "bias"},
    Linear: {"W": "weight", "b": "bias"},
    BatchNorm2d: {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"},
}


def torch_dtype(dtype):
    """``torch.float64`` / ``torch.float32`` from a torch dtype, NumPy dtype or name.

    Parameters
    ----------
    dtype : torch.dtype, numpy dtype, type or str
        Only float32 and float64 are accepted.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        return dtype
    dt = check_float_dtype(dtype)
    return torch.float64 if dt == np.float64 else torch.float32


def _numpy_dtype(dtype):
    if isinstance(dtype, torch.dtype):
        return np.dtype(np.float64) if torch_dtype(dtype) == torch.float64 else np.dtype(np.float32)
    return check_float_dtype(dtype)


# ---------------------------------------------------------------------------
# minicam -> torch
# ---------------------------------------------------------------------------


def _tensor(arr, dtype):
    # torch.tensor copies, so the torch model never shares memory with minicam's.
    return torch.tensor(np.asarray(arr), dtype=dtype)


def _layer_to_torch(layer, dtype, name):
    """One minicam layer as a torch module (a nested Sequential for GlobalAvgPool2d)."""
    skip = torch.nn.utils.skip_init  # no initialisation: no draw from torch's global RNG
    if isinstance(layer, Conv2d):
        mod = skip(
            nn.Conv2d, layer.in_channels, layer.out_channels, layer.kernel_size,
            stride=layer.stride, padding=layer.padding, bias=True, dtype=dtype,
        )
        with torch.no_grad():
            mod.weight.copy_(_tensor(layer.params["W"], dtype))
            mod.bias.copy_(_tensor(layer.params["b"], dtype))
    elif isinstance(layer, Linear):
        mod = skip(nn.Linear, layer.in_features, layer.out_features, bias=True, dtype=dtype)
        with torch.no_grad():
            mod.weight.copy_(_tensor(layer.params["W"], dtype))
            mod.bias.copy_(_tensor(layer.params["b"], dtype))
    elif isinstance(layer, BatchNorm2d):
        mod = skip(nn.BatchNorm2d, layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=dtype)
        with torch.no_grad():
            mod.weight.copy_(_tensor(layer.params["gamma"], dtype))
            mod.bias.copy_(_tensor(layer.params["beta"], dtype))
            mod.running_mean.copy_(_tensor(layer.buffers["running_mean"], dtype))
            mod.running_var.copy_(_tensor(layer.buffers["running_var"], dtype))
            mod.num_batches_tracked.zero_()
    elif isinstance(layer, ReLU):
        mod = nn.ReLU()
    elif isinstance(layer, MaxPool2d):
        mod = nn.MaxPool2d(layer.kernel_size, stride=layer.stride)
    elif isinstance(layer, AvgPool2d):
        mod = nn.AvgPool2d(layer.kernel_size, stride=layer.stride)
    elif isinstance(layer, GlobalAvgPool2d):
        # torch's pool keeps (N, C, 1, 1); the Flatten makes it minicam's (N, C).
        mod = nn.Sequential(OrderedDict([("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]))
    elif isinstance(layer, Flatten):
        mod = nn.Flatten()
    elif isinstance(layer, Dropout):
        mod = nn.Dropout(layer.p)
    else:
        raise TypeError(
            f"layer {name!r} is a {type(layer).__name__}, which has no PyTorch counterpart in "
            f"minicam.interop.torch (supported: Conv2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool2d, "
            f"Flatten, Linear, Dropout, BatchNorm2d)"
        )
    mod.train(layer.training)
    return mod


def to_torch(model, dtype=torch.float64):
    """A minicam model (or one layer) as an equivalent PyTorch module.

    Parameters
    ----------
    model : Sequential or Layer
    dtype : torch.float64 (default), torch.float32, or a NumPy float dtype / name

    Returns
    -------
    torch.nn.Sequential (or one ``torch.nn.Module`` for a Layer)
        Top-level modules named like minicam's layers, holding copies of the
        weights and BatchNorm running statistics, each in the train/eval mode
        of its minicam layer. A ``GlobalAvgPool2d`` becomes
        ``nn.Sequential(pool=AdaptiveAvgPool2d(1), flatten=Flatten())``.

    Notes
    -----
    No module is randomly initialised (``torch.nn.utils.skip_init``), so
    PyTorch's global random state is left untouched. Dropout's mask generator
    is not carried over: PyTorch draws its own masks.
    """
    dt = torch_dtype(dtype)
    if isinstance(model, Layer):
        return _layer_to_torch(model, dt, type(model).__name__)
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam Sequential or Layer, got {type(model).__name__}")
    seq = nn.Sequential(OrderedDict((name, _layer_to_torch(layer, dt, name)) for name, layer in model))
    # Sequential.train() recurses into the children: set the container's flag
    # first, then restore each layer's own mode.
    seq.training = model.training
    for name, layer in model:
        getattr(seq, name).train(layer.training)
    return seq


# ---------------------------------------------------------------------------
# torch -> minicam
# ---------------------------------------------------------------------------


_SUPPORTED = "Conv2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) + Flatten, Flatten, Linear, Dropout, BatchNorm2d"


def _module_label(path, mod):
    return f"{'.'.join(path) or '<root>'} ({type(mod).__name__})"


def _refuse(path, mod, option, value, why):
    raise ValueError(f"{_module_label(path, mod)}: {option}={value!r} is not supported: {why}")


def _square(value, path, mod, option):
    """An int from an int or a square tuple ``(k, k)``."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1] and isinstance(value[0], int):
        return int(value[0])
    _refuse(path, mod, option, value, "minicam supports square (equal height and width) integer values only")


def _ones(value):
    return value == 1 or (isinstance(value, (tuple, list)) and all(v == 1 for v in value))


def _zeros(value):
    return value == 0 or (isinstance(value, (tuple, list)) and all(v == 0 for v in value))


def _array(tensor, dtype):
    return tensor.detach().cpu().numpy().astype(dtype, copy=True)


def _is_gap(mod):
    return type(mod) is nn.AdaptiveAvgPool2d and mod.output_size in (1, (1, 1), [1, 1])


def _is_plain_flatten(mod):
    return type(mod) is nn.Flatten and mod.start_dim == 1 and mod.end_dim == -1


def _is_gap_pair(mod):
    children = list(mod.children())
    return type(mod) is nn.Sequential and len(children) == 2 and _is_gap(children[0]) and _is_plain_flatten(children[1])


def _leaves(module, prefix=()):
    """``(path, module)`` for every leaf, nested Sequentials flattened (a GAP pair container is a leaf)."""
    for name, child in module.named_children():
        path = prefix + (name,)
        if type(child) is nn.Sequential and not _is_gap_pair(child):
            yield from _leaves(child, path)
        else:
            yield path, child


def _minicam_name(path):
    name = "_".join(path)
    if name[:1].isdigit():
        name = "layer" + name
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise ValueError(
            f"module {'.'.join(path)!r}: its name cannot be turned into a minicam layer name "
            f"(a Python identifier); got {name!r}"
        )
    return name


def _plan(module):
    """``[(minicam_name, output_path, kind, modules)]``: the layers ``from_torch`` builds."""
    if type(module) is not nn.Sequential:
        raise TypeError(
            f"module must be a torch.nn.Sequential (nested Sequentials allowed), got {type(module).__name__}: "
            "the forward of any other module is arbitrary Python that cannot be converted"
        )
    leaves = list(_leaves(module))
    if not leaves:
        raise ValueError("module is an empty nn.Sequential")
    plan = []
    i = 0
    while i < len(leaves):
        path, mod = leaves[i]
        if _is_gap_pair(mod):
            # the pair's output is its second child's (the Flatten's) output
            second = [name for name, _ in mod.named_children()][1]
            plan.append((_minicam_name(path), path + (second,), "gap", list(mod.children())))
            i += 1
            continue
        if type(mod) is nn.AdaptiveAvgPool2d:
            if not _is_gap(mod):
                _refuse(path, mod, "output_size", mod.output_size, "only AdaptiveAvgPool2d(1) (global average pooling) is supported")
            nxt = leaves[i + 1] if i + 1 < len(leaves) else None
            if nxt is None or not _is_plain_flatten(nxt[1]):
                following = "nothing" if nxt is None else f"{'.'.join(nxt[0])} ({type(nxt[1]).__name__})"
                raise ValueError(
                    f"{_module_label(path, mod)} must be followed directly by nn.Flatten() (together they are minicam's "
                    f"GlobalAvgPool2d, whose output is (N, C)); it is followed by {following}"
                )
            plan.append((_minicam_name(path), nxt[0], "gap", [mod, nxt[1]]))
            i += 2
            continue
        plan.append((_minicam_name(path), path, "leaf", [mod]))
        i += 1
    names = [p[0] for p in plan]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two torch modules map to the same minicam layer name(s) {dupes}; rename one of them")
    return plan


def _leaf_from_torch(path, mod, dtype, gen):
    t = type(mod)
    if t is nn.Conv2d:
        k = _square(mod.kernel_size, path, mod, "kernel_size")
        s = _square(mod.stride, path, mod, "stride")
        if isinstance(mod.padding, str):
            if mod.padding == "valid":
                p = 0
            elif mod.padding == "same" and k % 2 == 1 and s == 1:
                p = (k - 1) // 2  # symmetric for odd kernels
            else:
                _refuse(path, mod, "padding", mod.padding, "'same' needs an odd kernel (even kernels pad asymmetrically)")
        else:
            p = _square(mod.padding, path, mod, "padding")
        if not _ones(mod.dilation):
            _refuse(path, mod, "dilation", mod.dilation, "minicam's Conv2d has no dilation")
        if mod.groups != 1:
            _refuse(path, mod, "groups", mod.groups, "minicam's Conv2d has no grouped convolution")
        if mod.padding_mode != "zeros":
            _refuse(path, mod, "padding_mode", mod.padding_mode, "minicam pads with zeros only")
        layer = Conv2d(mod.in_channels, mod.out_channels, k, stride=s, padding=p, rng=gen, dtype=dtype)
        layer.params["W"] = _array(mod.weight, dtype)
        layer.params["b"] = np.zeros(mod.out_channels, dtype) if mod.bias is None else _array(mod.bias, dtype)
    elif t is nn.Linear:
        layer = Linear(mod.in_features, mod.out_features, rng=gen, dtype=dtype)
        layer.params["W"] = _array(mod.weight, dtype)
        layer.params["b"] = np.zeros(mod.out_features, dtype) if mod.bias is None else _array(mod.bias, dtype)
    elif t is nn.ReLU:
        layer = ReLU()
    elif t is nn.MaxPool2d:
        k = _square(mod.kernel_size, path, mod, "kernel_size")
        s = k if mod.stride is None else _square(mod.stride, path, mod, "stride")
        if not _zeros(mod.padding):
            _refuse(path, mod, "padding", mod.padding, "minicam's MaxPool2d has no padding")
        if not _ones(mod.dilation):
            _refuse(path, mod, "dilation", mod.dilation, "minicam's MaxPool2d has no dilation")
        if mod.ceil_mode:
            _refuse(path, mod, "ceil_mode", mod.ceil_mode, "minicam pools in floor mode (leftover rows/columns dropped)")
        if mod.return_indices:
            _refuse(path, mod, "return_indices", mod.return_indices, "the module would output a tuple")
        layer = MaxPool2d(k, s)
    elif t is nn.AvgPool2d:
        k = _square(mod.kernel_size, path, mod, "kernel_size")
        s = k if mod.stride is None else _square(mod.stride, path, mod, "stride")
        if not _zeros(mod.padding):
            # with padding, count_include_pad decides the divisor; minicam has neither
            _refuse(path, mod, "padding", mod.padding, "minicam's AvgPool2d has no padding")
        if mod.ceil_mode:
            _refuse(path, mod, "ceil_mode", mod.ceil_mode, "minicam pools in floor mode (leftover rows/columns dropped)")
        if mod.divisor_override is not None:
            _refuse(path, mod, "divisor_override", mod.divisor_override, "minicam divides by the window size")
        layer = AvgPool2d(k, s)
    elif t is nn.Flatten:
        if not _is_plain_flatten(mod):
            _refuse(path, mod, "start_dim, end_dim", (mod.start_dim, mod.end_dim), "minicam flattens every axis but the first (1, -1)")
        layer = Flatten()
    elif t is nn.Dropout:
        if not 0.0 <= mod.p < 1.0:
            _refuse(path, mod, "p", mod.p, "minicam's Dropout needs 0 <= p < 1")
        layer = Dropout(mod.p, rng=gen)
    elif t is nn.BatchNorm2d:
        if not mod.affine:
            _refuse(path, mod, "affine", mod.affine, "minicam's BatchNorm2d always has gamma and beta")
        if not mod.track_running_stats:
            _refuse(path, mod, "track_running_stats", mod.track_running_stats, "minicam's BatchNorm2d keeps running statistics")
        if mod.momentum is None:
            _refuse(path, mod, "momentum", mod.momentum, "minicam uses an exponential moving average with a float momentum")
        layer = BatchNorm2d(mod.num_features, eps=mod.eps, momentum=mod.momentum, dtype=dtype)
        layer.params["gamma"] = _array(mod.weight, dtype)
        layer.params["beta"] = _array(mod.bias, dtype)
        layer.buffers["running_mean"] = _array(mod.running_mean, dtype)
        layer.buffers["running_var"] = _array(mod.running_var, dtype)
    else:
        kind = (
            f"a subclass of {t.__mro__[1].__name__}, whose forward may differ, so it is not supported"
            if isinstance(mod, _TORCH_TYPES) else "not supported"
        )
        raise TypeError(
            f"{_module_label(path, mod)} is {kind}; minicam.interop.torch converts exactly these modules: {_SUPPORTED} "
            "(inside nn.Sequential containers)"
        )
    for key, value in list(layer.params.items()) + list(layer.buffers.items()):
        # refused at import, naming the tensor: a NaN weight or a negative variance would give NaN maps later
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{_module_label(path, mod)}: tensor {_TENSOR_NAMES.get(key, key)!r} contains NaN or "
                             f"infinity ({int(np.sum(~np.isfinite(value)))} of {value.size} values)")
    if "running_var" in layer.buffers and (layer.buffers["running_var"] < 0).any():
        var = layer.buffers["running_var"]
        raise ValueError(f"{_module_label(path, mod)}: tensor 'running_var' must be >= 0 (a variance), got "
                         f"{float(var[var < 0][0])!r} in channel {int(np.flatnonzero(var < 0)[0])}")
    for key, value in layer.params.items():
        layer.grads[key] = np.zeros_like(value)
    layer.train(mod.training)
    return layer


# minicam key -> torch tensor name, for messages
_TENSOR_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}


_TORCH_TYPES = (
    nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Dropout, nn.BatchNorm2d, nn.AdaptiveAvgPool2d,
)


def from_torch(module, dtype=np.float64, rng=None):
    """A ``torch.nn.Sequential`` as a minicam :class:`~minicam.model.Sequential`.

    Parameters
    ----------
    module : torch.nn.Sequential
        Nested ``nn.Sequential`` containers are flattened. Supported leaves:
        see the module docstring; anything else is refused (``TypeError`` for
        a module type, ``ValueError`` for an option) with the module's path.
    dtype : float64 (default) or float32
        Parameter dtype of the minicam model. float32 weights widen to float64
        exactly.
    rng : None, int or numpy.random.Generator
        Source of the Dropout layers' masks.

    Returns
    -------
    Sequential
        Same weights (copies), same running statistics, same train/eval mode
        per layer. Layer names: see the module docstring (``features.3`` ->
        ``features_3``; :func:`layer_map` gives the correspondence).
    """
    dt = _numpy_dtype(dtype)
    gen = as_generator(rng)
    layers = []
    for name, path, kind, mods in _plan(module):
        if kind == "gap":
            layer = GlobalAvgPool2d()
            layer.train(mods[0].training)
        else:
            layer = _leaf_from_torch(path, mods[0], dt, gen)
        layers.append((name, layer))
    return Sequential(layers)


def layer_map(module):
    """minicam layer name -> dotted path of the torch module computing that layer's output.

    Parameters
    ----------
    module : torch.nn.Sequential
        A module :func:`from_torch` accepts.

    Returns
    -------
    dict of str -> str
        For a GlobalAvgPool2d made of a pool + Flatten pair, the Flatten's path.

    Examples
    --------
    >>> layer_map(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))   # doctest: +SKIP
    {'layer0': '0', 'layer1': '1'}
    """
    return {name: ".".join(out_path) for name, out_path, _, _ in _plan(module)}


def load_state_dict(module, state):
    """Load a PyTorch state dict into ``module``, checking it fits first.

    Parameters
    ----------
    module : torch.nn.Module
    state : dict of str -> torch.Tensor, or a path to a file saved with
        ``torch.save(model.state_dict(), path)`` (read with ``weights_only=True``)

    Raises
    ------
    ValueError
        Naming every missing key, unexpected key and tensor whose shape differs
        from the architecture's. Nothing is loaded unless everything fits.
    """
    source = state
    if not isinstance(state, dict):
        try:
            state = torch.load(state, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:
            raise ValueError(f"cannot read a state dict from {source!r}: {err}") from err
        if not isinstance(state, dict):
            raise ValueError(f"{source!r} does not hold a state dict (a dict of tensors), got {type(state).__name__}")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    for key, ref in expected.items():
        if key in state:
            value = state[key]
            if not isinstance(value, torch.Tensor):
                problems.append(f"{key!r} is a {type(value).__name__}, not a tensor")
            elif tuple(value.shape) != tuple(ref.shape):
                problems.append(f"{key!r} has shape {tuple(value.shape)}, the architecture expects {tuple(ref.shape)}")
    if problems:
        raise ValueError("the state dict does not fit the architecture: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
    return module
