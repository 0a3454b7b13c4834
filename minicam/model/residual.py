"""``Residual``: a residual block, ``after(body(x) + shortcut(x))``, whose backward adds the two paths' gradients."""

from ..layers.base import Layer
from ._container import _NAME_RE, _Container, _back_node, _check_namespace, _is_node, _leaf_forward, _named_items, _node_shapes, is_container
from .sequential import Sequential

__all__ = ["Residual"]


class Residual(_Container):
    """A residual block: ``after(body(x) + shortcut(x))`` (He et al. 2016, eq. 1: ``y = F(x) + x``).

    Parameters
    ----------
    body : Sequential, or a list of layers / (name, layer) pairs
        The residual function ``F``.
    shortcut : None, Layer or Sequential
        ``None`` is the identity (``y = F(x) + x``); otherwise a projection
        (ResNet: a strided 1x1 convolution and BatchNorm, ``W_s x`` of eq. 2).
        Its output must have the body's shape.
    after : None, Sequential, or a list of layers / (name, layer) pairs
        Layers applied to the sum (ResNet: the block's last ReLU).
    shortcut_name : str, default "shortcut"
        The shortcut's name in the block (``"downsample"`` in torchvision).

    Names
    -----
    The body's layers and ``after``'s layers are children of the block
    itself, next to the shortcut: torchvision's BasicBlock ``layer4.1`` is
    ``Residual([("conv1", ...), ("bn1", ...), ("relu1", ...), ("conv2", ...),
    ("bn2", ...)], after=[("relu2", ReLU())])``, whose layers are
    ``layer4.1.conv1``, ..., ``layer4.1.relu2``. Names must be unique across
    body, shortcut and ``after``.

    Notes
    -----
    The forward pass copies ``x`` to two paths and adds their ends; the
    backward pass therefore sends the upstream gradient ``g`` of the sum,
    unchanged, into both paths (the derivative of ``a + b`` is 1 for each),
    and **adds** what comes back at the fork:

    .. math:: \\frac{\\partial L}{\\partial x} = J_F(x)^T g + J_S(x)^T g

    (``J_S = I`` for the identity shortcut: the gradient always has a path
    that no layer shrinks, the point of residual learning).
    """

    def __init__(self, body, shortcut=None, after=None, shortcut_name="shortcut"):
        self.body = body if isinstance(body, Sequential) else Sequential(_named_items(body, "body"))
        if shortcut is not None and not _is_node(shortcut):
            raise TypeError(
                f"shortcut must be None (the identity), a Layer or a Sequential, got {type(shortcut).__name__}"
            )
        if isinstance(shortcut, Residual):
            raise TypeError("shortcut must be None, a Layer or a Sequential, got a Residual (wrap it in a Sequential)")
        self.shortcut = shortcut
        if after is None or isinstance(after, Sequential):
            self.after = after
        elif isinstance(after, Layer):
            self.after = Sequential([after])
        else:
            self.after = Sequential(_named_items(after, "after"))
        if not isinstance(shortcut_name, str) or not _NAME_RE.match(shortcut_name):
            raise ValueError(f"shortcut_name must be an identifier like 'downsample', got {shortcut_name!r}")
        self.shortcut_name = shortcut_name
        _check_namespace(self._children(), "Residual")
        self.outputs = {}

    def __repr__(self):
        def rows(items):
            return [f"    ({name}): " + repr(node).replace("\n", "\n    ") for name, node in items]

        lines = ["  body:"] + rows(self.body.items())
        lines.append("  shortcut: identity" if self.shortcut is None else "  shortcut:")
        if self.shortcut is not None:
            lines += rows([(self.shortcut_name, self.shortcut)])
        lines.append("  body + shortcut, then:" if self.after is not None else "  output: body + shortcut")
        if self.after is not None:
            lines += rows(self.after.items())
        return "Residual(\n" + "\n".join(lines) + "\n)"

    def _children(self):
        items = self.body.items()
        if self.shortcut is not None:
            items.append((self.shortcut_name, self.shortcut))
        if self.after is not None:
            items += self.after.items()
        return items

    def _run(self, x, run, prefix):
        out = self.body._run(x, run, prefix)
        if self.shortcut is None:
            skip = x
        else:
            name = prefix + self.shortcut_name
            if is_container(self.shortcut):
                skip = self.shortcut._run(x, run, name + ".")
            else:
                try:
                    skip = _leaf_forward(self.shortcut, x, run.cache)
                except (ValueError, TypeError) as err:
                    raise type(err)(f"layer {name!r} ({type(self.shortcut).__name__}): {err}") from err
            run.record(name, skip)
        if out.shape != skip.shape:
            where = prefix[:-1] or "Residual"
            raise ValueError(
                f"block {where!r}: the body outputs shape {out.shape} but the shortcut outputs {skip.shape}; "
                "they must be equal to be added (a projection shortcut fixes channels and stride)"
            )
        out = out + skip
        if self.after is not None:
            out = self.after._run(out, run, prefix)
        return out

    def _back(self, grad, relu_mode, stop, param_grads=True):
        where = None if stop is None else stop[0]
        if self.after is not None:
            if where in self.after._index:
                return self.after._back(grad, relu_mode, stop, param_grads)
            grad = self.after._back(grad, relu_mode, None, param_grads)
        # grad is now the gradient of the sum: each path receives it as is.
        if where in self.body._index:
            return self.body._back(grad, relu_mode, stop, param_grads)
        if where == self.shortcut_name:
            if len(stop) == 1:
                return grad  # the shortcut's output is an operand of the sum
            return self.shortcut._back(grad, relu_mode, stop[1:], param_grads)
        dbody = self.body._back(grad, relu_mode, None, param_grads)
        dskip = grad if self.shortcut is None else _back_node(self.shortcut, grad, relu_mode, param_grads)
        return dbody + dskip  # the paths forked at x: their gradients add

    def _shapes(self, shape, shapes, prefix):
        out = self.body._shapes(shape, shapes, prefix)
        skip = shape if self.shortcut is None else _node_shapes(self.shortcut, prefix + self.shortcut_name, shape, shapes)
        if out != skip:
            where = prefix[:-1] or "Residual"
            raise ValueError(
                f"block {where!r}: the body outputs shape {out} but the shortcut outputs {skip}; "
                "they must be equal to be added"
            )
        if self.after is not None:
            out = self.after._shapes(out, shapes, prefix)
        return out
