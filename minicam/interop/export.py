"""minicam -> PyTorch: :func:`to_torch` writes a model out as torch modules with the same state-dict keys."""

from collections import OrderedDict

import numpy as np

from ..layers import (
    AdaptiveAvgPool2d,
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
from ..model import Residual, Sequential, is_container
from ._torch_base import nn, torch, torch_dtype

__all__ = ["to_torch", "TorchResidual"]


class TorchResidual(nn.Module):
    """minicam's :class:`~minicam.model.Residual` block as a torch module: ``after(body(x) + shortcut(x))``.

    Its children are registered under the block's names (the body's layers,
    the shortcut, the layers after the addition), so its state-dict keys are
    minicam's: a torchvision BasicBlock written out by :func:`to_torch` keeps
    ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ...
    """

    def __init__(self, body, shortcut=None, after=(), shortcut_name="shortcut"):
        super().__init__()
        self.body_names = [name for name, _ in body]
        self.after_names = [name for name, _ in after]
        self.shortcut_name = None if shortcut is None else shortcut_name
        for name, mod in body:
            self.add_module(name, mod)
        if shortcut is not None:
            self.add_module(shortcut_name, shortcut)
        for name, mod in after:
            self.add_module(name, mod)

    def forward(self, x):
        out = x
        for name in self.body_names:
            out = getattr(self, name)(out)
        skip = x if self.shortcut_name is None else getattr(self, self.shortcut_name)(x)
        out = out + skip
        for name in self.after_names:
            out = getattr(self, name)(out)
        return out


def _tensor(arr, dtype):
    # torch.tensor copies, so the torch model never shares memory with minicam's.
    return torch.tensor(np.asarray(arr), dtype=dtype)


def _layer_to_torch(layer, dtype, name):
    """One minicam layer as a torch module (a nested Sequential for GlobalAvgPool2d)."""
    skip = torch.nn.utils.skip_init  # no initialisation: no draw from torch's global RNG
    if isinstance(layer, Conv2d):
        mod = skip(
            nn.Conv2d, layer.in_channels, layer.out_channels, layer.kernel_size,
            stride=layer.stride, padding=layer.padding, bias=layer.bias, dtype=dtype,
        )
        with torch.no_grad():
            mod.weight.copy_(_tensor(layer.params["W"], dtype))
            if layer.bias:
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
        mod = nn.MaxPool2d(layer.kernel_size, stride=layer.stride, padding=layer.padding)
    elif isinstance(layer, AvgPool2d):
        mod = nn.AvgPool2d(layer.kernel_size, stride=layer.stride)
    elif isinstance(layer, AdaptiveAvgPool2d):
        mod = nn.AdaptiveAvgPool2d(tuple(layer.output_size))
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
            f"minicam.interop.torch (supported: Conv2d, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, "
            f"GlobalAvgPool2d, Flatten, Linear, Dropout, BatchNorm2d, and the containers Sequential and Residual)"
        )
    mod.train(layer.training)
    return mod


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _node_to_torch(node, dtype, name):
    if isinstance(node, Sequential):
        return nn.Sequential(OrderedDict((n, _node_to_torch(child, dtype, _join(name, n))) for n, child in node))
    if isinstance(node, Residual):
        body = [(n, _node_to_torch(child, dtype, _join(name, n))) for n, child in node.body]
        after = [] if node.after is None else [(n, _node_to_torch(c, dtype, _join(name, n))) for n, c in node.after]
        shortcut = None if node.shortcut is None else _node_to_torch(
            node.shortcut, dtype, _join(name, node.shortcut_name))
        return TorchResidual(body, shortcut, after, node.shortcut_name)
    return _layer_to_torch(node, dtype, name)


def to_torch(model, dtype=torch.float64):
    """A minicam model (or one layer) as an equivalent PyTorch module.

    Parameters
    ----------
    model : Sequential, Residual or Layer
    dtype : torch.float64 (default), torch.float32, or a NumPy float dtype / name

    Returns
    -------
    torch.nn.Module
        A ``Sequential`` becomes an ``nn.Sequential`` and a ``Residual`` a
        :class:`TorchResidual`, with children named like minicam's, so the
        module paths (and the state-dict keys: ``layer4.1.conv1.weight``) are
        minicam's dotted names. Copies of the weights and BatchNorm running
        statistics; each module in the train/eval mode of its minicam layer.
        A ``GlobalAvgPool2d`` becomes ``nn.Sequential(pool=AdaptiveAvgPool2d(1),
        flatten=Flatten())``.

    Notes
    -----
    No module is randomly initialised (``torch.nn.utils.skip_init``), so
    PyTorch's global random state is left untouched. Dropout's mask generator
    is not carried over: PyTorch draws its own masks.
    """
    dt = torch_dtype(dtype)
    if isinstance(model, Layer):
        return _layer_to_torch(model, dt, type(model).__name__)
    if not isinstance(model, (Sequential, Residual)):
        raise TypeError(f"model must be a minicam Sequential, Residual or Layer, got {type(model).__name__}")
    root = _node_to_torch(model, dt, "")
    # nn.Module.train() recurses into the children: set every container's flag
    # from its minicam node, then each layer's own mode was set when it was built.
    for path, mod in root.named_modules():
        node = model if path == "" else model[path] if path in model else None
        if is_container(node):
            mod.training = node.training
    return root
