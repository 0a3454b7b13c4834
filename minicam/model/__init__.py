"""``Sequential`` and ``Residual``: named layers, every output kept, backward to any layer.

Rooms: :mod:`~minicam.model._container` (what both share),
:mod:`~minicam.model.sequential`, :mod:`~minicam.model.residual`.

A model is a tree. Its leaves are layers (:class:`minicam.layers.Layer`);
its inner nodes are containers: a :class:`Sequential` (a chain) or a
:class:`Residual` block (a body and a shortcut whose outputs are added).
Containers nest, so a ResNet is a ``Sequential`` of named stages, each a
``Sequential`` of ``Residual`` blocks.

Names
-----
Every node has a dotted name, its path from the root: ``"conv1"`` at the top,
``"layer4.1.conv2"`` for the layer ``conv2`` of block ``1`` of stage
``layer4`` -- PyTorch's naming, so a parameter ``layer4.1.conv2.W`` is the
tensor torch calls ``layer4.1.conv2.weight``. A ``Residual`` block's body and
the layers after its addition sit directly in the block's namespace; its
shortcut has a name of its own (``"downsample"`` in torchvision's ResNets).
Any dotted name works wherever a layer is named: ``model["layer4.1.relu2"]``,
``model.outputs["layer4"]``, ``backward(stop_at="layer4.1.conv1")``,
``grad_cam(model, x, layer="layer4")``.
"""

from ._container import is_container
from .residual import Residual
from .sequential import Sequential

__all__ = ["Sequential", "Residual", "is_container"]
