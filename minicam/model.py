"""``Sequential``: named layers, every output kept, backward to any layer."""

import re

import numpy as np

from ._validate import StateError, check_float_array
from .layers.activations import RELU_MODES, ReLU
from .layers.base import Layer, calls_unchecked

__all__ = ["Sequential"]

# Prefixes for auto-naming an unnamed list of layers: conv1, relu1, pool1, ...
_PREFIX = {
    "Conv2d": "conv",
    "ReLU": "relu",
    "MaxPool2d": "pool",
    "AvgPool2d": "avgpool",
    "GlobalAvgPool2d": "gap",
    "Flatten": "flatten",
    "Linear": "fc",
    "Dropout": "dropout",
    "BatchNorm2d": "bn",
}

def _prefix(layer):
    # A subclass (e.g. a student's Conv2d) is named like the layer it extends.
    for cls in type(layer).__mro__:
        if cls.__name__ in _PREFIX:
            return _PREFIX[cls.__name__]
    return type(layer).__name__.lower()


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Sequential:
    """A chain of named layers.

    Parameters
    ----------
    layers : list of (str, Layer) pairs, or list of Layer
        With bare layers, names are generated per kind: ``conv1``, ``relu1``,
        ``pool1``, ``conv2``, ... (``gap``, ``fc``, ``bn``, ``dropout``,
        ``flatten``, ``avgpool`` for the other kinds). Names must be unique
        Python identifiers, so a minicam name is also a valid attribute name
        of a PyTorch module.

    Examples
    --------
    >>> import minicam as mc
    >>> model = mc.Sequential([mc.Conv2d(3, 8, 3, padding=1, rng=0), mc.ReLU(),
    ...                        mc.GlobalAvgPool2d(), mc.Linear(8, 4, rng=1)])
    >>> model.names
    ['conv1', 'relu1', 'gap1', 'fc1']

    Notes
    -----
    ``forward(x)`` keeps every layer's output in :attr:`outputs` (the feature
    maps the CAM methods need). ``backward(dscores, relu_mode, stop_at)``
    runs the chain backward, passing ``relu_mode`` to every ReLU (this is how
    guided backpropagation and deconvnet are computed: no second network, no
    hooks), and stops at the output of layer ``stop_at`` if given.
    """

    def __init__(self, layers):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of Layer or of (name, Layer) pairs, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers must not be empty")
        named = []
        counters = {}
        for i, item in enumerate(layers):
            if isinstance(item, Layer):
                prefix = _prefix(item)
                counters[prefix] = counters.get(prefix, 0) + 1
                named.append((f"{prefix}{counters[prefix]}", item))
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Layer):
                name = item[0]
                if not isinstance(name, str) or not _NAME_RE.match(name):
                    raise ValueError(f"layer names must be identifiers like 'conv1', got {name!r} at position {i}")
                named.append((name, item[1]))
            else:
                raise TypeError(f"layers[{i}] must be a Layer or a (name, Layer) pair, got {item!r}")
        names = [n for n, _ in named]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"layer names must be unique, got duplicates {dupes}")
        if len({id(layer) for _, layer in named}) != len(named):
            raise ValueError("the same Layer object appears twice; create one object per position")
        self._layers = named
        self._index = {n: i for i, n in enumerate(names)}
        self.outputs = {}

    # -- container protocol -------------------------------------------------
    @property
    def names(self):
        """Layer names in order."""
        return [n for n, _ in self._layers]

    @property
    def layers(self):
        """Layers in order."""
        return [layer for _, layer in self._layers]

    def items(self):
        """``(name, layer)`` pairs in order."""
        return list(self._layers)

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError(f"layers are looked up by name (str), got {name!r}")
        return self._layers[self._layer_index(name, "name")][1]

    def __contains__(self, name):
        return name in self._index

    def __iter__(self):
        return iter(self._layers)

    def __len__(self):
        return len(self._layers)

    def __repr__(self):
        lines = [f"  ({name}): {layer!r}" for name, layer in self._layers]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def _layer_index(self, name, arg):
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"{arg} must name a layer of the model, one of {self.names}, got {name!r}") from None

    # -- modes --------------------------------------------------------------
    @property
    def training(self):
        """True when the model is in training mode."""
        return all(layer.training for layer in self.layers)

    def train(self, mode=True):
        """Put every layer in training mode (Dropout active, BatchNorm on batch statistics)."""
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        """Put every layer in inference mode."""
        return self.train(False)

    # -- computation ----------------------------------------------------------
    def forward(self, x):
        """Run every layer; keep each output in ``self.outputs[name]``.

        Parameters
        ----------
        x : ndarray, shape (N, ...) matching the first layer (e.g. (N, C, H, W))

        Returns
        -------
        ndarray
            The last layer's output (the class scores, (N, M), for a classifier).
        """
        check_float_array(x, "x")
        outputs = {}
        out = x
        for name, layer in self._layers:
            try:
                # x was checked once above: minicam's layers are called through their
                # unchecked _forward (shape checks only, no NaN scan of every activation).
                out = layer._forward(out) if calls_unchecked(layer, "forward") else layer.forward(out)
            except (ValueError, TypeError) as err:
                raise type(err)(f"layer {name!r} ({type(layer).__name__}): {err}") from err
            outputs[name] = out
        self.outputs = outputs
        return out

    __call__ = forward

    def backward(self, dscores, relu_mode="standard", stop_at=None):
        """Backpropagate ``dscores`` through the layers of the last forward.

        Parameters
        ----------
        dscores : ndarray, shape of the last output (e.g. (N, M))
            Gradient of the quantity being differentiated with respect to the
            model's output (for an explanation: a one-hot row per sample).
        relu_mode : {"standard", "guided", "deconvnet"}
            Backward rule of every ReLU (see :class:`minicam.layers.ReLU`).
        stop_at : str, optional
            Stop once the gradient with respect to this layer's *output* is
            known, and return it.

        Returns
        -------
        ndarray
            Gradient with respect to the input (or to the output of ``stop_at``).
            Each visited layer's ``grads`` are overwritten.
        """
        if relu_mode not in RELU_MODES:
            raise ValueError(f"relu_mode must be one of {RELU_MODES}, got {relu_mode!r}")
        stop = -1 if stop_at is None else self._layer_index(stop_at, "stop_at")
        if not self.outputs:
            raise StateError("Sequential.backward called before forward")
        check_float_array(dscores, "dscores")
        last = self.outputs[self._layers[-1][0]]
        if dscores.shape != last.shape:
            raise ValueError(f"dscores must have the shape of the model's output {last.shape}, got {dscores.shape}")
        grad = dscores
        for i in range(len(self._layers) - 1, stop, -1):
            name, layer = self._layers[i]
            # dscores was checked once above; minicam's layers skip the check (a layer
            # that overrides the public backward, e.g. a student's, is called through it).
            step = layer._backward if calls_unchecked(layer, "backward") else layer.backward
            grad = step(grad, mode=relu_mode) if isinstance(layer, ReLU) else step(grad)
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
        layers = [(layer, layer._cache, dict(layer.grads), dict(layer.buffers)) for layer in self.layers]
        return (self.outputs, layers)  # forward replaces the dict, never fills it in place

    def restore(self, snapshot):
        """Put back the transient state saved by :meth:`snapshot` of this model."""
        outputs, layers = snapshot
        if [layer for layer, *_ in layers] != self.layers:
            raise ValueError("snapshot must come from this model's snapshot(), got one of another model")
        self.outputs = outputs
        for layer, cache, grads, buffers in layers:
            layer._cache = cache
            layer.grads.clear()
            layer.grads.update(grads)
            layer.buffers.clear()
            layer.buffers.update(buffers)

    def clear_state(self):
        """Forget the kept outputs and every layer's cache (the next ``backward`` needs a ``forward`` first)."""
        self.outputs = {}
        for layer in self.layers:
            layer._cache = None

    # -- parameters -----------------------------------------------------------
    def named_parameters(self):
        """Yield ``("layer.key", array)`` for every trainable array (the live arrays)."""
        for name, layer in self._layers:
            for key, value in layer.params.items():
                yield f"{name}.{key}", value

    def named_gradients(self):
        """Yield ``("layer.key", array)`` for the gradient of every trainable array."""
        for name, layer in self._layers:
            for key in layer.params:
                yield f"{name}.{key}", layer.grads[key]

    def named_buffers(self):
        """Yield ``("layer.key", array)`` for saved non-trainable state (BatchNorm statistics)."""
        for name, layer in self._layers:
            for key, value in layer.buffers.items():
                yield f"{name}.{key}", value

    def parameters(self):
        """Yield ``(layer, key)`` for every trainable array: ``layer.params[key]`` and ``layer.grads[key]``."""
        for _, layer in self._layers:
            for key in layer.params:
                yield layer, key

    @property
    def num_params(self):
        """Number of trainable scalars."""
        return sum(layer.num_params for layer in self.layers)

    def state_dict(self):
        """Copies of every parameter and buffer, keyed ``"layer.key"`` (PyTorch's naming)."""
        state = {k: v.copy() for k, v in self.named_parameters()}
        state.update({k: v.copy() for k, v in self.named_buffers()})
        return state

    def load_state_dict(self, state):
        """Replace parameters and buffers by (copies of) ``state``'s arrays.

        Every key must be present, none extra, each with the expected shape;
        values are cast to the parameter's dtype. Nothing is changed unless
        everything fits.
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
        for name, layer in self._layers:
            for key in layer.params:
                layer.params[key] = new[f"{name}.{key}"]
            for key in layer.buffers:
                layer.buffers[key] = new[f"{name}.{key}"]
        return self

    def astype(self, dtype):
        """Cast every parameter and buffer to ``dtype`` in place (gradients reset). Returns ``self``."""
        from ._validate import check_float_dtype

        dt = check_float_dtype(dtype)
        for layer in self.layers:
            for key in layer.params:
                layer.params[key] = layer.params[key].astype(dt)
                layer.grads[key] = np.zeros_like(layer.params[key])
            for key in layer.buffers:
                layer.buffers[key] = layer.buffers[key].astype(dt)
        return self

    # -- description ----------------------------------------------------------
    def output_shapes(self, input_shape):
        """Each layer's output shape for an input of ``input_shape``, without computing anything.

        Returns
        -------
        list of (name, shape)
        """
        shape = tuple(int(s) for s in input_shape)
        shapes = []
        for name, layer in self._layers:
            try:
                shape = tuple(layer.output_shape(shape))
            except ValueError as err:
                raise ValueError(f"layer {name!r} ({type(layer).__name__}): {err}") from err
            shapes.append((name, shape))
        return shapes

    def summary(self, input_shape, file=None):
        """Print (and return) a table of each layer's output shape and parameter count.

        Parameters
        ----------
        input_shape : tuple, e.g. (1, 3, 32, 32)
        file : writable text stream, optional
            Where to print (default: standard output). Pass ``False`` to only return the text.
        """
        rows = [("layer", "type", "output shape", "params")]
        rows.append(("input", "", str(tuple(input_shape)), ""))
        for (name, shape), layer in zip(self.output_shapes(input_shape), self.layers):
            rows.append((name, type(layer).__name__, str(shape), f"{layer.num_params:,}"))
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
