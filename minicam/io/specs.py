"""The architecture record of a model file: writing it, checking it (keys, names, types, configs, caps), building it."""

import inspect

from .._validate import check_float, check_int
from ..layers import LAYER_TYPES
from .caps import (
    FORMAT, FORMAT_VERSION, MAX_DEPTH, MAX_FEATURES, MAX_KERNEL_SIZE, MAX_LAYERS, MAX_OUTPUT_SIZE, MAX_PADDING,
    MAX_STRIDE,
)

__all__ = ["architecture", "check_header", "expected_arrays", "build"]

_HEADER_KEYS = {"format", "version", "minicam_version", "layers", "metadata"}
_LAYER_KEYS = {"name", "type", "config"}
# Containers (format version 2): their keys instead of "config".
_CONTAINER_KEYS = {"Sequential": {"name", "type", "layers"}, "Residual": {"name", "type", "body", "shortcut", "after"}}
# Constructor arguments that are not architecture: the initialiser's seed
# and the dtype (chosen at load time).
_NOT_CONFIG = {"self", "rng", "dtype"}


def _spec(name, node, path):
    """The JSON-ready description of one node (a layer or a container, recursively)."""
    from ..model import Residual, Sequential

    if type(node) is Sequential:
        return {"name": name, "type": "Sequential", "layers": [_spec(n, c, f"{path}{n}.") for n, c in node.items()]}
    if type(node) is Residual:
        return {
            "name": name,
            "type": "Residual",
            "body": [_spec(n, c, f"{path}{n}.") for n, c in node.body.items()],
            "shortcut": None if node.shortcut is None else _spec(node.shortcut_name, node.shortcut, f"{path}{node.shortcut_name}."),
            "after": None if node.after is None else [_spec(n, c, f"{path}{n}.") for n, c in node.after.items()],
        }
    tname = type(node).__name__
    if LAYER_TYPES.get(tname) is not type(node):
        # A subclass may compute something else under the same config:
        # saving it as its parent would load a different model.
        raise TypeError(
            f"layer {path[:-1]!r} is a {type(node).__module__}.{type(node).__qualname__}; a minicam file can "
            f"only describe the layer types {sorted(LAYER_TYPES)} and the containers Sequential and Residual"
        )
    return {"name": name, "type": tname, "config": node.config()}


def architecture(model):
    """The JSON-ready list of ``{"name", "type", "config"}`` of ``model``'s layers (containers nested)."""
    return [_spec(name, node, f"{name}.") for name, node in model.items()]


# Integer hyper-parameters and their (minimum, maximum).
_INT_LIMITS = {
    "in_channels": (1, MAX_FEATURES), "out_channels": (1, MAX_FEATURES), "in_features": (1, MAX_FEATURES),
    "out_features": (1, MAX_FEATURES), "num_features": (1, MAX_FEATURES), "kernel_size": (1, MAX_KERNEL_SIZE),
    "stride": (1, MAX_STRIDE), "padding": (0, MAX_PADDING),
}


def _layer_arrays(kind, config):
    """``{key: shape}`` of the parameters and buffers of a layer, from its checked config alone.

    Must agree with what the layer's constructor allocates (a test checks
    every type of :data:`~minicam.layers.LAYER_TYPES`); ``None`` for a type
    this loader has no rule for.
    """
    if kind == "Conv2d":
        f, c, k = config["out_channels"], config["in_channels"], config["kernel_size"]
        return {"W": (f, c, k, k), "b": (f,)} if config.get("bias", True) else {"W": (f, c, k, k)}
    if kind == "Linear":
        return {"W": (config["out_features"], config["in_features"]), "b": (config["out_features"],)}
    if kind == "BatchNorm2d":
        c = config["num_features"]
        return {"gamma": (c,), "beta": (c,), "running_mean": (c,), "running_var": (c,)}
    if kind in ("ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "GlobalAvgPool2d", "Flatten", "Dropout",
                "L2Normalize"):
        return {}
    return None


def check_header(header, where):
    """Validate the decoded JSON; return its ``layers`` and ``metadata``."""
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the architecture must be a JSON object, got {type(header).__name__}")
    if header.get("format") != FORMAT:
        raise ValueError(f"{where}: not a minicam model file (format {header.get('format')!r:.80}, expected {FORMAT!r})")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{where}: the format version must be an int, got {version!r:.80}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where}: written by a newer minicam (format version {str(version)[:20]}); this minicam reads "
            f"version {FORMAT_VERSION}: upgrade minicam"
        )
    if version < 1:
        raise ValueError(f"{where}: invalid format version {version!r:.20}")
    unknown = sorted(set(header) - _HEADER_KEYS)
    missing = sorted({"format", "version", "layers"} - set(header))
    if unknown or missing:
        raise ValueError(f"{where}: architecture fields: missing {missing}, unexpected {unknown}")
    layers = header["layers"]
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: 'layers' must be a non-empty list, got {layers!r:.80}")
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"{where}: {len(layers)} layers, more than MAX_LAYERS = {MAX_LAYERS}")
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    count = [0]
    _check_specs(layers, where, "layers", "", 1, count)
    return layers, metadata


def _check_specs(specs, where, field, prefix, depth, count):
    """Check a list of node specs (recursively): keys, names, types, nesting and the total count."""
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"{where}: {field} must be a non-empty list, got {specs!r:.80}")
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: containers nested more than MAX_DEPTH = {MAX_DEPTH} deep (at {prefix[:-1]!r:.120})")
    for i, spec in enumerate(specs):
        _check_spec(spec, where, f"{field}[{i}]", prefix, depth, count)
    names = [spec["name"] for spec in specs]
    dupes = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dupes:
        raise ValueError(f"{where}: layer names must be unique, got duplicates {dupes!r:.200}")


def _check_spec(spec, where, field, prefix, depth, count):
    count[0] += 1
    if count[0] > MAX_LAYERS:
        raise ValueError(f"{where}: more than MAX_LAYERS = {MAX_LAYERS} layers and containers")
    kind = spec.get("type") if isinstance(spec, dict) else None
    keys = _CONTAINER_KEYS.get(kind, _LAYER_KEYS) if isinstance(kind, str) else _LAYER_KEYS
    if not isinstance(spec, dict) or set(spec) != keys:
        raise ValueError(f"{where}: {field} must be an object with exactly the keys {sorted(keys)}, got {spec!r:.120}")
    if not isinstance(spec["name"], str):
        raise ValueError(f"{where}: {field} name must be a string, got {spec['name']!r:.80}")
    name = prefix + spec["name"]
    if kind == "Sequential":
        _check_specs(spec["layers"], where, f"{name!r}.layers", name + ".", depth + 1, count)
    elif kind == "Residual":
        _check_specs(spec["body"], where, f"{name!r}.body", name + ".", depth + 1, count)
        if spec["shortcut"] is not None:
            if isinstance(spec["shortcut"], dict) and spec["shortcut"].get("type") == "Residual":
                raise ValueError(f"{where}: block {name!r}: a shortcut cannot be a Residual")
            _check_spec(spec["shortcut"], where, f"{name!r}.shortcut", name + ".", depth + 1, count)
        if spec["after"] is not None:
            _check_specs(spec["after"], where, f"{name!r}.after", name + ".", depth + 1, count)
    else:
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise ValueError(
                f"{where}: layer {name!r:.80} has unknown type {kind!r:.80}; "
                f"known types: {sorted(LAYER_TYPES)} and the containers {sorted(_CONTAINER_KEYS)}"
            )
        if not isinstance(spec["config"], dict):
            raise ValueError(f"{where}: layer {name!r:.80} config must be a JSON object, got {spec['config']!r:.80}")


def expected_arrays(specs, where, prefix=""):
    """``{"path.key": shape}`` of every array the (checked) specs imply."""
    expected = {}
    for spec in specs:
        name = prefix + spec["name"]
        if spec["type"] == "Sequential":
            expected.update(expected_arrays(spec["layers"], where, name + "."))
        elif spec["type"] == "Residual":
            for part in (spec["body"], [spec["shortcut"]] if spec["shortcut"] else [], spec["after"] or []):
                expected.update(expected_arrays(part, where, name + "."))
        else:
            expected.update(_check_config({**spec, "name": name}, where))
    return expected


def build(spec, dtype, gen, where, prefix=""):
    """The node a checked spec describes (containers recursively)."""
    from ..model import Residual, Sequential

    name = prefix + spec["name"]

    def chain(specs):
        return Sequential([(s["name"], build(s, dtype, gen, where, name + ".")) for s in specs])

    if spec["type"] == "Sequential":
        return chain(spec["layers"])
    if spec["type"] == "Residual":
        shortcut = spec["shortcut"]
        return Residual(
            chain(spec["body"]),
            shortcut=None if shortcut is None else build(shortcut, dtype, gen, where, name + "."),
            after=None if spec["after"] is None else chain(spec["after"]),
            shortcut_name="shortcut" if shortcut is None else shortcut["name"],
        )
    return _build_layer({**spec, "name": name}, dtype, gen, where)


def _check_config(spec, where):
    """Check one layer's config against its constructor and the caps; return its ``{key: shape}``."""
    kind, name, config = spec["type"], spec["name"], spec["config"]
    sig = inspect.signature(LAYER_TYPES[kind].__init__).parameters
    allowed = set(sig) - _NOT_CONFIG
    required = {k for k in allowed if sig[k].default is inspect.Parameter.empty}
    unknown, missing = sorted(set(config) - allowed), sorted(required - set(config))
    if unknown or missing:
        raise ValueError(
            f"{where}: layer {name!r} ({kind}) config: missing {missing}, unexpected {unknown!r:.200} "
            f"(valid keys: {sorted(allowed)})"
        )
    for key, value in config.items():
        try:
            if key in _INT_LIMITS:
                low, high = _INT_LIMITS[key]
                if check_int(value, key, minimum=low) > high:
                    raise ValueError(f"{key} must be <= {high} (minicam.io's cap), got {value!r}")
            elif key == "bias":
                if not isinstance(value, bool):
                    raise TypeError(f"bias must be true or false, got {value!r:.40}")
            elif key == "output_size":
                if not isinstance(value, list) or len(value) != 2:
                    raise ValueError(f"output_size must be a list [h, w] (what config() writes), got {value!r:.40}")
                for size in value:
                    if check_int(size, key, minimum=1) > MAX_OUTPUT_SIZE:
                        raise ValueError(f"{key} must be <= {MAX_OUTPUT_SIZE} (minicam.io's cap), got {value!r:.40}")
            elif value is not None:  # eps, momentum, p: the constructor checks their ranges
                check_float(value, key)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{where}: layer {name!r} ({kind}) has an invalid config {config!r:.200}: {err}") from err
    shapes = _layer_arrays(kind, {**{k: sig[k].default for k in allowed}, **config})
    if shapes is None:
        raise ValueError(f"{where}: layer {name!r}: this minicam cannot check the arrays of a {kind} layer")
    return {f"{name}.{key}": shape for key, shape in shapes.items()}


def _build_layer(spec, dtype, gen, where):
    """Construct one layer from its checked spec; its config must round-trip exactly."""
    cls = LAYER_TYPES[spec["type"]]
    name, config = spec["name"], spec["config"]
    sig = inspect.signature(cls.__init__).parameters
    kwargs = dict(config)
    if "dtype" in sig:
        kwargs["dtype"] = dtype
    if "rng" in sig:
        # Initial weights are replaced by the file's; Dropout keeps this
        # generator for its masks.
        kwargs["rng"] = gen
    try:
        layer = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: layer {name!r} ({spec['type']}) has an invalid config {config}: {err}") from err
    if layer.config() != config:
        raise ValueError(
            f"{where}: layer {name!r} ({spec['type']}) config {config} does not describe a layer exactly "
            f"(it builds {layer.config()})"
        )
    return layer


