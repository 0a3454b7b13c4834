"""What Sequential and Residual share: naming, the namespace of children, passes, parameters, description."""

import re

import numpy as np

from .._validate import StateError, check_batch, check_float_array
from ..layers.activations import RELU_MODES, ReLU
from ..layers.base import Layer, calls_unchecked

__all__ = ["is_container"]

# Prefixes for auto-naming an unnamed list of layers: conv1, relu1, pool1, ...
_PREFIX = {
    "Conv2d": "conv",
    "ReLU": "relu",
    "MaxPool2d": "pool",
    "AvgPool2d": "avgpool",
    "AdaptiveAvgPool2d": "adaptivepool",
    "GlobalAvgPool2d": "gap",
    "Flatten": "flatten",
    "Linear": "fc",
    "Dropout": "dropout",
    "BatchNorm2d": "bn",
    "Sequential": "seq",
    "Residual": "block",
}

# A Python identifier, or a non-negative integer (PyTorch's nn.Sequential
# names its children "0", "1", ...). Never a dot: dots separate path parts.
_NAME_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")


def _prefix(node):
    # A subclass (e.g. a student's Conv2d) is named like the layer it extends.
    for cls in type(node).__mro__:
        if cls.__name__ in _PREFIX:
            return _PREFIX[cls.__name__]
    return type(node).__name__.lower()


def is_container(node):
    """True for a :class:`Sequential` or a :class:`Residual` (a node with named children)."""
    return isinstance(node, _Container)


def _is_node(item):
    return isinstance(item, (Layer, _Container))


def _named_items(layers, what):
    """``[(name, node)]`` from a list of nodes or ``(name, node)`` pairs, names generated or checked."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"{what} must be a list of layers or of (name, layer) pairs, got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError(f"{what} must not be empty")
    named = []
    counters = {}
    for i, item in enumerate(layers):
        if _is_node(item):
            prefix = _prefix(item)
            counters[prefix] = counters.get(prefix, 0) + 1
            named.append((f"{prefix}{counters[prefix]}", item))
        elif isinstance(item, tuple) and len(item) == 2 and _is_node(item[1]):
            name = item[0]
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise ValueError(
                    f"{what}: layer names must be identifiers like 'conv1' or integers like '0', "
                    f"got {name!r} at position {i}"
                )
            named.append((name, item[1]))
        else:
            raise TypeError(
                f"{what}[{i}] must be a Layer, a Sequential, a Residual or a (name, layer) pair, got {item!r}"
            )
    return named


def _check_namespace(named, what):
    names = [n for n, _ in named]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: layer names must be unique, got duplicates {dupes}")
    leaves = []
    for _, node in named:
        leaves += [id(leaf) for _, leaf in node.named_layers()] if is_container(node) else [id(node)]
    if len(set(leaves)) != len(leaves):
        raise ValueError(f"{what}: the same Layer object appears twice; create one object per position")


def _leaf_step(layer, method):
    # Inputs are checked once at the model's entry: minicam's layers are called
    # through their unchecked _forward/_backward (shape checks only, no NaN scan
    # of every activation); a layer whose public method is not minicam's
    # check-then-compute wrapper (a student's subclass) is called through it.
    if calls_unchecked(layer, method):
        return getattr(layer, "_" + method)
    return getattr(layer, method)


class _Pass:
    """One forward pass: the outputs it keeps, and whether the layers it runs keep their caches."""

    def __init__(self, cache):
        self.outputs = {}
        self.cache = cache is True  # a name: caches from the layer after that node on
        self.cache_after = cache if isinstance(cache, str) else None

    def record(self, name, out):
        self.outputs[name] = out
        if name == self.cache_after:
            self.cache = True


def _leaf_forward(layer, x, cache):
    """A layer's forward; without ``cache``, minicam's layers keep nothing for a backward (``_infer``)."""
    if cache:
        return _leaf_step(layer, "forward")(x)
    if calls_unchecked(layer, "forward"):
        return layer._infer(x)
    return layer.forward(x)  # a layer that overrides forward (a student's) is called as it is


def _back_node(node, grad, relu_mode, param_grads):
    """Backward through one child (a container or a layer), all the way to its input."""
    if is_container(node):
        return node._back(grad, relu_mode, None, param_grads)
    if isinstance(node, ReLU):
        return _leaf_step(node, "backward")(grad, mode=relu_mode)
    if not param_grads and calls_unchecked(node, "backward"):
        return node._backward_input(grad)
    return _leaf_step(node, "backward")(grad)


def _node_shapes(node, name, shape, shapes):
    """Append ``(name, shape)`` of ``node`` (and of its descendants) to ``shapes``; return its output shape."""
    if is_container(node):
        out = node._shapes(shape, shapes, name + ".")
    else:
        try:
            out = tuple(node.output_shape(shape))
        except ValueError as err:
            raise ValueError(f"layer {name!r} ({type(node).__name__}): {err}") from err
    shapes.append((name, out))
    return out


class _Container:
    """What :class:`Sequential` and :class:`Residual` share: a namespace of children, passes, parameters."""

    outputs = None
    _result = None

    # -- the namespace ----------------------------------------------------------
    def items(self):
        """``(name, node)`` pairs of the direct children, in order (nodes may be containers)."""
        return list(self._children())

    @property
    def names(self):
        """Names of the direct children, in order."""
        return [n for n, _ in self._children()]

    @property
    def layers(self):
        """The direct children, in order."""
        return [node for _, node in self._children()]

    def __iter__(self):
        return iter(self._children())

    def __len__(self):
        return len(self._children())

    def _child(self, name):
        for n, node in self._children():
            if n == name:
                return node
        return None

    def _lookup(self, name, arg):
        """The node at dotted path ``name`` (a ValueError naming ``arg`` if there is none)."""
        if not isinstance(name, str):
            raise TypeError(f"{arg} must be a layer name (str), got {name!r} ({type(name).__name__})")
        node = self
        for part in name.split("."):
            child = node._child(part) if is_container(node) else None
            if child is None:
                hint = " (names inside blocks are dotted paths, e.g. 'layer4.1.conv1')" if "." in name else ""
                raise ValueError(f"{arg} must name a layer of the model, one of {self.names}{hint}, got {name!r}")
            node = child
        return node

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError(f"layers are looked up by name (str), got {name!r}")
        return self._lookup(name, "name")

    def __contains__(self, name):
        if not isinstance(name, str):
            return False
        try:
            self._lookup(name, "name")
        except ValueError:
            return False
        return True

    def named_nodes(self, prefix=""):
        """``(dotted name, node)`` of every descendant, parents before children (containers included)."""
        for name, node in self._children():
            yield prefix + name, node
            if is_container(node):
                yield from node.named_nodes(prefix + name + ".")

    def named_layers(self, prefix=""):
        """``(dotted name, layer)`` of every layer (the leaves: no containers), in order."""
        for name, node in self.named_nodes(prefix):
            if not is_container(node):
                yield name, node

    def __repr__(self):
        lines = []
        for name, node in self._children():
            text = repr(node).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    # -- modes --------------------------------------------------------------
    @property
    def training(self):
        """True when every layer is in training mode."""
        return all(layer.training for _, layer in self.named_layers())

    def train(self, mode=True):
        """Put every layer in training mode (Dropout active, BatchNorm on batch statistics)."""
        for _, layer in self.named_layers():
            layer.train(mode)
        return self

    def eval(self):
        """Put every layer in inference mode."""
        return self.train(False)

    # -- computation ----------------------------------------------------------
    def forward(self, x, cache=True):
        """Run every layer; keep each node's output in ``self.outputs[dotted name]``.

        Parameters
        ----------
        x : ndarray, shape (N, ...) matching the first layer (e.g. (N, C, H, W))
        cache : True, False or str, default True
            What the layers keep for a backward pass: ``True``, everything
            (a backward to the input works); ``False``, nothing (an inference
            pass: Score-CAM's and occlusion's masked copies); a node name, only
            the layers that run after that node's output (a backward with
            ``stop_at`` that node works: Grad-CAM's). A layer that keeps
            nothing forgets its earlier cache too, so a backward through it
            fails loudly rather than using a stale one. The outputs are kept
            either way.

        Returns
        -------
        ndarray
            The last node's output (the class scores, (N, M), for a classifier).
        """
        check_batch(check_float_array(x, "x"))
        if isinstance(cache, str):
            self._lookup(cache, "cache")
        elif not isinstance(cache, bool):
            raise TypeError(f"cache must be True, False or a layer name, got {cache!r}")
        run = _Pass(cache)
        try:
            out = self._run(x, run, "")
        except ValueError as err:
            hint = self._size_hint(x.shape)
            if hint is None:
                raise
            raise ValueError(f"{hint} ({err})") from err
        self.outputs = run.outputs
        self._result = out
        return out

    __call__ = forward

    def backward(self, dscores, relu_mode="standard", stop_at=None, param_grads=True):
        """Backpropagate ``dscores`` through the layers of the last forward.

        Parameters
        ----------
        dscores : ndarray, shape of the last output (e.g. (N, M))
            Gradient of the quantity being differentiated with respect to the
            model's output (for an explanation: a one-hot row per sample).
        relu_mode : {"standard", "guided", "deconvnet"}
            Backward rule of every ReLU (see :class:`minicam.layers.ReLU`),
            inside blocks too.
        stop_at : str, optional
            Stop once the gradient with respect to this node's *output* is
            known, and return it. A dotted name reaches inside containers
            (``"layer4.1.conv1"``).
        param_grads : bool, default True
            ``False`` skips the parameter gradients of Conv2d and Linear
            layers (their ``grads`` keep their old values): an explanation
            needs only the gradient flowing back, and ``dW`` of a
            convolution costs as much as ``dx``.

        Returns
        -------
        ndarray
            Gradient with respect to the input (or to the output of ``stop_at``).
            Each visited layer's ``grads`` are overwritten (unless
            ``param_grads=False``). Where a path forks
            (a residual block's input feeds the body and the shortcut), the
            gradients coming back along the two paths are added.
        """
        if relu_mode not in RELU_MODES:
            raise ValueError(f"relu_mode must be one of {RELU_MODES}, got {relu_mode!r}")
        stop = None
        if stop_at is not None:
            self._lookup(stop_at, "stop_at")
            stop = stop_at.split(".")
        if not self.outputs:
            raise StateError(f"{type(self).__name__}.backward called before forward")
        check_float_array(dscores, "dscores")
        if dscores.shape != self._result.shape:
            raise ValueError(f"dscores must have the shape of the model's output {self._result.shape}, got {dscores.shape}")
        if not isinstance(param_grads, bool):
            raise TypeError(f"param_grads must be True or False, got {param_grads!r}")
        grad = self._back(dscores, relu_mode, stop, param_grads)
        return grad.copy() if grad is dscores else grad

    # -- transient state ------------------------------------------------------
    def snapshot(self):
        """Everything a forward or backward pass overwrites, to put back with :meth:`restore`.

        That is the kept outputs, each layer's cache (what its backward
        needs), its gradients and its buffers (BatchNorm's running
        statistics, which a training-mode forward updates). Parameters and
        modes are not included: passes never change them. Arrays are held
        by reference (layers replace them rather than write into them), so
        a snapshot is cheap.

        Returns
        -------
        object
            An opaque value for :meth:`restore`.
        """
        layers = [(layer, layer._cache, dict(layer.grads), dict(layer.buffers)) for _, layer in self.named_layers()]
        return (self.outputs, self._result, layers)  # forward replaces the dict, never fills it in place

    def restore(self, snapshot):
        """Put back the transient state saved by :meth:`snapshot` of this model."""
        outputs, result, layers = snapshot
        if [layer for layer, *_ in layers] != [layer for _, layer in self.named_layers()]:
            raise ValueError("snapshot must come from this model's snapshot(), got one of another model")
        self.outputs = outputs
        self._result = result
        for layer, cache, grads, buffers in layers:
            layer._cache = cache
            layer.grads.clear()
            layer.grads.update(grads)
            layer.buffers.clear()
            layer.buffers.update(buffers)

    def clear_state(self):
        """Forget the kept outputs and every layer's cache (the next ``backward`` needs a ``forward`` first)."""
        self.outputs = {}
        self._result = None
        for _, layer in self.named_layers():
            layer._cache = None

    # -- parameters -----------------------------------------------------------
    def named_parameters(self):
        """Yield ``("path.key", array)`` for every trainable array (the live arrays)."""
        for name, layer in self.named_layers():
            for key, value in layer.params.items():
                yield f"{name}.{key}", value

    def named_gradients(self):
        """Yield ``("path.key", array)`` for the gradient of every trainable array."""
        for name, layer in self.named_layers():
            for key in layer.params:
                yield f"{name}.{key}", layer.grads[key]

    def named_buffers(self):
        """Yield ``("path.key", array)`` for saved non-trainable state (BatchNorm statistics)."""
        for name, layer in self.named_layers():
            for key, value in layer.buffers.items():
                yield f"{name}.{key}", value

    def parameters(self):
        """Yield ``(layer, key)`` for every trainable array: ``layer.params[key]`` and ``layer.grads[key]``."""
        for _, layer in self.named_layers():
            for key in layer.params:
                yield layer, key

    @property
    def num_params(self):
        """Number of trainable scalars."""
        return sum(layer.num_params for _, layer in self.named_layers())

    def state_dict(self):
        """Copies of every parameter and buffer, keyed ``"path.key"`` (PyTorch's naming)."""
        state = {k: v.copy() for k, v in self.named_parameters()}
        state.update({k: v.copy() for k, v in self.named_buffers()})
        return state

    def load_state_dict(self, state):
        """Replace parameters and buffers by (copies of) ``state``'s arrays.

        Every key must be present, none extra, each with the expected shape;
        values are cast to the parameter's dtype. Nothing is changed unless
        everything fits. (A PyTorch state dict, with torch's key names, loads
        through :func:`minicam.interop.keys.load_torch_state_dict`.)
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        expected = dict(self.named_parameters())
        expected.update(dict(self.named_buffers()))
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"state does not fit the model: missing {missing}, unexpected {extra}")
        new = {}
        for key, ref in expected.items():
            value = state[key]
            if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
                raise TypeError(f"state[{key!r}] must be a float ndarray, got {type(value).__name__} {getattr(value, 'dtype', '')}")
            if value.shape != ref.shape:
                raise ValueError(f"state[{key!r}] must have shape {ref.shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state[{key!r}] contains NaN or infinity")
            new[key] = value.astype(ref.dtype, copy=True)
        for name, layer in self.named_layers():
            for key in layer.params:
                layer.params[key] = new[f"{name}.{key}"]
            for key in layer.buffers:
                layer.buffers[key] = new[f"{name}.{key}"]
        return self

    def astype(self, dtype):
        """Cast every parameter and buffer to ``dtype`` in place (gradients reset). Returns ``self``."""
        from .._validate import check_float_dtype

        dt = check_float_dtype(dtype)
        for _, layer in self.named_layers():
            for key in layer.params:
                layer.params[key] = layer.params[key].astype(dt)
                layer.grads[key] = np.zeros_like(layer.params[key])
            for key in layer.buffers:
                layer.buffers[key] = layer.buffers[key].astype(dt)
        return self

    # -- description ----------------------------------------------------------
    def output_shapes(self, input_shape):
        """Each node's output shape for an input of ``input_shape``, without computing anything.

        Returns
        -------
        list of (name, shape)
            In the order the outputs are computed: a container comes after its
            children (``layer4.1.conv1``, ..., ``layer4.1``, ``layer4``). For a
            model without containers, one row per layer.
        """
        shape = tuple(int(s) for s in input_shape)
        shapes = []
        try:
            self._shapes(shape, shapes, "")
        except ValueError as err:
            hint = self._size_hint(shape)
            if hint is None:
                raise
            raise ValueError(f"{hint} ({err})") from err
        return shapes

    def output_shape(self, input_shape):
        """Shape of the output for an input of ``input_shape`` (without computing it)."""
        return self._shapes(tuple(int(s) for s in input_shape), [], "")

    def _fits(self, shape):
        try:
            self._shapes(shape, [], "")
        except ValueError:
            return False
        return True

    def smallest_input_size(self, input_shape, largest=1024):
        """The smallest square ``S`` such that an input ``(N, C, S, S)`` fits the model, or None.

        Parameters
        ----------
        input_shape : tuple (N, C, H, W)
            Only ``N`` and ``C`` are used.
        largest : int
            Sizes above this are not tried.
        """
        n, c = int(input_shape[0]), int(input_shape[1])
        for size in range(1, largest + 1):
            if self._fits((n, c, size, size)):
                return size
        return None

    def _size_hint(self, shape):
        """A sentence saying the smallest input size, when ``shape`` is an image batch too small to fit."""
        if len(shape) != 4:
            return None
        smallest = self.smallest_input_size(shape)
        if smallest is None or min(shape[2], shape[3]) >= smallest:
            return None
        return (
            f"an input of {shape[2]}x{shape[3]} pixels is too small for this model: the smallest it accepts is "
            f"{smallest}x{smallest}"
        )

    def summary(self, input_shape, file=None):
        """Print (and return) a table of each node's output shape and parameter count.

        Containers are listed after their children, with their children's
        total parameter count.

        Parameters
        ----------
        input_shape : tuple, e.g. (1, 3, 32, 32)
        file : writable text stream, optional
            Where to print (default: standard output). Pass ``False`` to only return the text.
        """
        rows = [("layer", "type", "output shape", "params")]
        rows.append(("input", "", str(tuple(input_shape)), ""))
        for name, shape in self.output_shapes(input_shape):
            node = self[name]
            rows.append((name, type(node).__name__, str(shape), f"{node.num_params:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        fmt = "  ".join("{:<%d}" % w for w in widths[:3]) + "  {:>%d}" % widths[3]
        lines = [fmt.format(*rows[0]), "-" * (sum(widths) + 6)]
        lines += [fmt.format(*r) for r in rows[1:]]
        lines.append("-" * (sum(widths) + 6))
        lines.append(f"total trainable parameters: {self.num_params:,}")
        text = "\n".join(lines)
        if file is not False:
            print(text, file=file)
        return text
