"""Bridge to PyTorch: move a model both ways, and compare every number.

PyTorch is an optional dependency, imported only by this package's torch
modules (``import minicam`` never imports it)::

    pip install torch==2.13.0 captum

Functions
---------
to_torch(model, dtype=torch.float64)
    A minicam model (or one layer) as an equivalent torch module whose module
    paths are minicam's dotted names, so the state-dict keys agree
    (``layer4.1.conv1.weight`` is minicam's ``layer4.1.conv1.W``) and
    ``model.get_submodule("features.29")`` is the layer minicam calls
    ``features.29`` -- the same layer for minicam's Grad-CAM and captum's.
    (:mod:`minicam.interop.export`)
from_torch(module, dtype=np.float64, rng=None)
    Any module whose ``forward`` ``torch.fx`` traces into supported
    operations (torchvision's AlexNet, VGG and ResNets included), as a
    minicam model named by the torch paths. (:mod:`minicam.interop.importer`,
    whose docstring says how a graph becomes a model.)
layer_map(module)
    minicam layer name -> the torch module path computing that layer's output.
load_state_dict(module, state)
    Load a PyTorch state dict into a torch module, checking every key and shape first.

Loading a torch state dict into a *minicam* model needs no torch:
:func:`minicam.interop.keys.load_torch_state_dict`.

The side-by-side comparison (``compare``, ``check_torch``, the
``check-torch`` command) lives in :mod:`minicam.interop.compare`.

Correspondence of layers
------------------------
==========================  ==============================================
minicam                     PyTorch
==========================  ==============================================
``Conv2d``                  ``nn.Conv2d`` (square kernel, square int stride
                            and padding, ``padding="valid"``, or ``"same"``
                            with an odd kernel; ``bias=False`` kept; dilation
                            1, groups 1, zero padding mode)
``ReLU``                    ``nn.ReLU``, ``F.relu``, ``torch.relu``,
                            ``Tensor.relu`` (in place or not). ``to_torch``
                            writes modules: captum's guided backprop and
                            deconvnet hook ReLU *modules*.
``MaxPool2d``               ``nn.MaxPool2d`` (padding <= kernel // 2,
                            dilation 1, floor mode, no ``return_indices``)
``AvgPool2d``               ``nn.AvgPool2d`` (padding 0, floor mode, no
                            ``divisor_override``)
``AdaptiveAvgPool2d``       ``nn.AdaptiveAvgPool2d`` (int or pair output
                            size, not None)
``GlobalAvgPool2d``         written as ``nn.Sequential(pool=
                            AdaptiveAvgPool2d(1), flatten=Flatten())``
                            (torch's pool outputs (N, C, 1, 1), minicam's
                            (N, C)); such a pair reads back as one layer
``Flatten``                 ``nn.Flatten()``, ``torch.flatten(x, 1)``,
                            ``x.flatten(1)``, ``x.view(x.size(0), -1)``
``Linear``                  ``nn.Linear`` (``bias=False`` -> zero bias)
``Dropout``                 ``nn.Dropout`` (not ``Dropout2d``)
``BatchNorm2d``             ``nn.BatchNorm2d`` (affine, tracking running
                            statistics, a float momentum)
``Sequential``              ``nn.Sequential`` (or any module whose forward
                            chains its children)
``Residual``                ``out = body(x) + shortcut(x)`` (``+``,
                            ``torch.add``, ``+=``), then the block's own
                            layers; written as :class:`TorchResidual`
==========================  ==============================================

Anything else -- another module type, a subclass, a function, an option
minicam does not model, a graph that is not a chain of residual blocks -- is
refused with a message naming the module or graph node and the option.
Parameters keep PyTorch's layouts (``W`` <-> ``weight``, ``b`` <-> ``bias``,
``gamma`` <-> ``weight``, ``beta`` <-> ``bias``), so weights move without
transposes.

Train/eval state is per layer in both directions (a model may have BatchNorm
in training mode and Dropout in eval mode). Dropout masks are random in both
frameworks and never equal: compare train-mode Dropout by its rule, not by
its output.
"""

from ._torch_base import torch, torch_dtype
from .export import TorchResidual, to_torch
from .importer import from_torch, layer_map

__all__ = [
    "to_torch",
    "from_torch",
    "layer_map",
    "load_state_dict",
    "torch_dtype",
    "TorchResidual",
]


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
