"""One supported torch module -> one minicam layer, with every option minicam does not model refused by name."""

import numpy as np

from ..layers import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ._torch_base import SUPPORTED_MODULES, TENSOR_NAMES, nn

__all__ = ["SUPPORTED", "leaf_from_torch", "is_gap_pair"]

SUPPORTED = (
    "modules " + ", ".join(t.__name__ for t in SUPPORTED_MODULES)
    + "; functions relu (F.relu, torch.relu, Tensor.relu, in place or not), flatten(x, 1), "
    "x.view(x.size(0), -1) / reshape, and the addition of two tensors (a residual connection)"
)


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


def _is_plain_flatten(mod):
    return type(mod) is nn.Flatten and mod.start_dim == 1 and mod.end_dim == -1


def is_gap_pair(mod):
    # what to_torch writes for a GlobalAvgPool2d: Sequential(AdaptiveAvgPool2d(1), Flatten())
    children = list(mod.children())
    return (type(mod) is nn.Sequential and len(children) == 2 and type(children[0]) is nn.AdaptiveAvgPool2d
            and children[0].output_size in (1, (1, 1), [1, 1]) and _is_plain_flatten(children[1]))


def _conv(path, mod, dtype, gen):
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
    layer = Conv2d(mod.in_channels, mod.out_channels, k, stride=s, padding=p, bias=mod.bias is not None, rng=gen,
                   dtype=dtype)
    layer.params["W"] = _array(mod.weight, dtype)
    if mod.bias is not None:
        layer.params["b"] = _array(mod.bias, dtype)
    return layer


def _pool(path, mod, cls):
    k = _square(mod.kernel_size, path, mod, "kernel_size")
    s = k if mod.stride is None else _square(mod.stride, path, mod, "stride")
    if mod.ceil_mode:
        _refuse(path, mod, "ceil_mode", mod.ceil_mode, "minicam pools in floor mode (leftover rows/columns dropped)")
    if cls is MaxPool2d:
        if not _ones(mod.dilation):
            _refuse(path, mod, "dilation", mod.dilation, "minicam's MaxPool2d has no dilation")
        if mod.return_indices:
            _refuse(path, mod, "return_indices", mod.return_indices, "the module would output a tuple")
        p = _square(mod.padding, path, mod, "padding")
        if p > k // 2:
            _refuse(path, mod, "padding", mod.padding, "padding must be at most half the kernel size")
        return MaxPool2d(k, s, padding=p)
    if not _zeros(mod.padding):
        # with padding, count_include_pad decides the divisor; minicam's AvgPool2d has neither
        _refuse(path, mod, "padding", mod.padding, "minicam's AvgPool2d has no padding")
    if mod.divisor_override is not None:
        _refuse(path, mod, "divisor_override", mod.divisor_override, "minicam divides by the window size")
    return AvgPool2d(k, s)


def leaf_from_torch(path, mod, dtype, gen):
    """The minicam layer equivalent to the supported torch module ``mod`` (at ``path``)."""
    t = type(mod)
    if t is nn.Conv2d:
        layer = _conv(path, mod, dtype, gen)
    elif t is nn.Linear:
        layer = Linear(mod.in_features, mod.out_features, rng=gen, dtype=dtype)
        layer.params["W"] = _array(mod.weight, dtype)
        layer.params["b"] = np.zeros(mod.out_features, dtype) if mod.bias is None else _array(mod.bias, dtype)
    elif t is nn.ReLU:
        layer = ReLU()
    elif t is nn.MaxPool2d:
        layer = _pool(path, mod, MaxPool2d)
    elif t is nn.AvgPool2d:
        layer = _pool(path, mod, AvgPool2d)
    elif t is nn.AdaptiveAvgPool2d:
        size = mod.output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        if any(s is None for s in size):
            _refuse(path, mod, "output_size", mod.output_size, "None (keep the input size) is not modelled")
        layer = AdaptiveAvgPool2d(size)
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
            if isinstance(mod, SUPPORTED_MODULES) else "not supported"
        )
        raise TypeError(f"{_module_label(path, mod)} is {kind}; minicam.interop.torch converts exactly these: {SUPPORTED}")
    for key, value in list(layer.params.items()) + list(layer.buffers.items()):
        # refused at import, naming the tensor: a NaN weight or a negative variance would give NaN maps later
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{_module_label(path, mod)}: tensor {TENSOR_NAMES.get(key, key)!r} contains NaN or "
                             f"infinity ({int(np.sum(~np.isfinite(value)))} of {value.size} values)")
    if "running_var" in layer.buffers and (layer.buffers["running_var"] < 0).any():
        var = layer.buffers["running_var"]
        raise ValueError(f"{_module_label(path, mod)}: tensor 'running_var' must be >= 0 (a variance), got "
                         f"{float(var[var < 0][0])!r} in channel {int(np.flatnonzero(var < 0)[0])}")
    for key, value in layer.params.items():
        layer.grads[key] = np.zeros_like(value)
    layer.train(mod.training)
    return layer
