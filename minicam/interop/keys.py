"""PyTorch state-dict keys of a minicam model, and loading a PyTorch state dict (no torch needed).

minicam names a parameter ``"<dotted layer path>.<key>"`` with its own keys
(``W``, ``b``; BatchNorm's ``gamma``, ``beta``, ``running_mean``,
``running_var``); PyTorch names the same tensor ``"<module path>.<attr>"``
(``weight``, ``bias``, ``running_mean``, ``running_var``). The paths are the
same when the model's names follow the torch module tree (what
:func:`minicam.interop.torch.from_torch` and the :mod:`minicam.zoo`
AlexNet/VGG/ResNet builders produce), so a torchvision checkpoint loads
unchanged::

    state = torch.load("resnet18-f37072fd.pth")          # torchvision's file
    load_torch_state_dict(mc.zoo.resnet18(), state)

The values may be NumPy arrays or torch tensors (anything with
``.detach().cpu().numpy()``), so this module never imports torch.
BatchNorm's ``num_batches_tracked`` counter (used by PyTorch only when
``momentum=None``) has no minicam counterpart and is skipped.
"""

import numpy as np

__all__ = ["TORCH_NAMES", "torch_keys", "load_torch_state_dict"]

TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
"""minicam parameter key -> PyTorch attribute (running statistics keep their names)."""

_SKIPPED = ("num_batches_tracked",)


def torch_keys(model):
    """``{minicam key: torch key}`` for every parameter and buffer of ``model``.

    Parameters
    ----------
    model : minicam.Sequential

    Returns
    -------
    dict of str -> str
        E.g. ``{"layer1.0.conv1.W": "layer1.0.conv1.weight", "bn1.gamma": "bn1.weight", ...}``.
    """
    keys = {}
    for name, _ in list(model.named_parameters()) + list(model.named_buffers()):
        path, _, key = name.rpartition(".")
        keys[name] = f"{path}.{TORCH_NAMES.get(key, key)}"
    return keys


def _as_array(value, key):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"state[{key!r}] must be a float tensor or ndarray, got {type(value).__name__} "
                        f"{getattr(value, 'dtype', '')}")
    return value


def load_torch_state_dict(model, state):
    """Load a PyTorch state dict (torch key names) into ``model``; nothing changes unless everything fits.

    Parameters
    ----------
    model : minicam.Sequential
    state : dict of str -> tensor or ndarray
        E.g. ``torchvision.models.resnet18(weights=...).state_dict()``, or a
        checkpoint read with ``torch.load``. ``*.num_batches_tracked``
        entries are ignored.

    Returns
    -------
    model

    Raises
    ------
    ValueError
        Naming every missing key, unexpected key and tensor whose shape
        differs from the model's, or a NaN/infinite value.
    TypeError
        ``state`` is not a dict, or holds a non-float value.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict of tensors or arrays (a state dict), got {type(state).__name__}")
    keys = torch_keys(model)
    wanted = set(keys.values())
    given = {k for k in state if not (isinstance(k, str) and k.rpartition(".")[2] in _SKIPPED)}
    missing, extra = sorted(wanted - given), sorted(map(str, given - wanted))
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"unexpected {extra}")
    converted = {}
    reference = dict(model.named_parameters())
    reference.update(dict(model.named_buffers()))
    for mine, theirs in keys.items():
        if theirs not in state:
            continue
        value = _as_array(state[theirs], theirs)
        if value.shape != reference[mine].shape:
            problems.append(f"{theirs!r} has shape {value.shape}, the model expects {reference[mine].shape}")
        converted[mine] = value
    if problems:
        raise ValueError("the state dict does not fit the model: " + "; ".join(problems))
    model.load_state_dict(converted)  # casts to the model's dtype, refuses NaN/infinity
    return model
