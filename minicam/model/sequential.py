"""``Sequential``: a chain of named nodes (layers or nested containers)."""

from ._container import _Container, _back_node, _check_namespace, _leaf_forward, _named_items, _node_shapes, is_container

__all__ = ["Sequential"]


class Sequential(_Container):
    """A chain of named nodes: layers, and (nested) ``Sequential`` or ``Residual`` containers.

    Parameters
    ----------
    layers : list of (str, node) pairs, or list of nodes
        A node is a :class:`~minicam.layers.Layer`, a :class:`Sequential` or
        a :class:`Residual`. With bare nodes, names are generated per kind:
        ``conv1``, ``relu1``, ``pool1``, ``conv2``, ... (``gap``, ``fc``,
        ``bn``, ``dropout``, ``flatten``, ``avgpool``, ``adaptivepool``,
        ``seq``, ``block`` for the other kinds). Names must be unique Python
        identifiers or non-negative integers (``"0"``, ``"1"``: PyTorch's
        ``nn.Sequential`` naming), so a minicam name is always a valid module
        name in PyTorch.

    Examples
    --------
    >>> import minicam as mc
    >>> model = mc.Sequential([mc.Conv2d(3, 8, 3, padding=1, rng=0), mc.ReLU(),
    ...                        mc.GlobalAvgPool2d(), mc.Linear(8, 4, rng=1)])
    >>> model.names
    ['conv1', 'relu1', 'gap1', 'fc1']

    Notes
    -----
    ``forward(x)`` keeps every node's output in :attr:`outputs`, under its
    dotted name (the feature maps the CAM methods need). ``backward(dscores,
    relu_mode, stop_at)`` runs the chain backward, passing ``relu_mode`` to
    every ReLU (this is how guided backpropagation and deconvnet are
    computed: no second network, no hooks), and stops at the output of node
    ``stop_at`` if given.
    """

    def __init__(self, layers):
        named = _named_items(layers, "layers")
        _check_namespace(named, "layers")
        self._layers = named
        self._index = {n: i for i, (n, _) in enumerate(named)}
        self.outputs = {}

    def _children(self):
        return self._layers

    def _layer_index(self, name, arg):
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"{arg} must name a layer of the model, one of {self.names}, got {name!r}") from None

    def _run(self, x, run, prefix):
        out = x
        for name, node in self._layers:
            full = prefix + name
            if is_container(node):
                out = node._run(out, run, full + ".")
            else:
                try:
                    out = _leaf_forward(node, out, run.cache)
                except (ValueError, TypeError) as err:
                    raise type(err)(f"layer {full!r} ({type(node).__name__}): {err}") from err
            run.record(full, out)
        return out

    def _back(self, grad, relu_mode, stop, param_grads=True):
        # stop: None (to the input) or the dotted path split into parts,
        # its first part a child of this container.
        lowest = -1 if stop is None else self._index[stop[0]]
        for i in range(len(self._layers) - 1, lowest, -1):
            grad = _back_node(self._layers[i][1], grad, relu_mode, param_grads)
        if stop is not None and len(stop) > 1:
            grad = self._layers[lowest][1]._back(grad, relu_mode, stop[1:], param_grads)
        return grad

    def _shapes(self, shape, shapes, prefix):
        for name, node in self._layers:
            shape = _node_shapes(node, prefix + name, shape, shapes)
        return shape
