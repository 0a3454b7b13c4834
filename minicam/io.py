"""Saving and loading models: one ``.npz``, never pickle, every byte checked.

Images are read by :mod:`minicam.images` (:func:`load_image` and
:func:`image_size` are re-exported here).

File format (version 1)
-----------------------
A model file is an ordinary ``.npz`` (a zip archive of ``.npy`` arrays), so
``numpy.load(path, allow_pickle=False)`` can open it without minicam:

- ``__architecture__``: a 0-d unicode array holding JSON text::

      {"format": "minicam-model", "version": 1, "minicam_version": "0.1.0",
       "layers": [{"name": "conv1", "type": "Conv2d",
                   "config": {"in_channels": 3, "out_channels": 16, ...}}, ...],
       "metadata": {...}}

  ``type`` is a key of :data:`minicam.layers.LAYER_TYPES` and ``config`` is
  the layer's ``config()``: its constructor's hyper-parameters. Version 2
  adds containers, nested in place of a layer: ``{"name", "type":
  "Sequential", "layers": [...]}`` and ``{"name", "type": "Residual",
  "body": [...], "shortcut": <one entry, named by the shortcut> or null,
  "after": [...] or null}`` (at most :data:`MAX_DEPTH` deep). A model
  without containers is still written as version 1.
- one float array per parameter and buffer, named ``"<dotted path>.<key>"``
  (``conv1.W``, ``conv1.b``, ``bn1.running_mean``, ``layer4.1.conv1.W``:
  PyTorch's state-dict paths).

Saved files are byte-for-byte reproducible: the archive members carry a fixed
timestamp, so the same weights give the same file.

What :func:`load` promises
--------------------------
A model file may come from anywhere, so :func:`load` treats it as hostile.
Whatever the bytes, it returns a valid model or raises ``ValueError`` naming
the file and what is wrong -- never another exception type, never a pickle,
and never more memory than the caps below allow. It checks, in this order,
before it reads any array's data or builds any layer:

1. a zip archive of ``.npy`` members only, with an architecture record whose
   ``.npy`` header (read alone; at most 10,000 bytes) declares at most
   :data:`MAX_ARCHITECTURE_CHARS` characters;
2. the JSON: known fields, at most :data:`MAX_LAYERS` layers with unique
   names and known types, each config with exactly its constructor's keys and
   integer hyper-parameters within :data:`MAX_FEATURES` (channels, features),
   :data:`MAX_KERNEL_SIZE`, :data:`MAX_STRIDE` and :data:`MAX_PADDING`;
3. the parameter shapes computed from the configs: at most
   :data:`MAX_ARRAY_ELEMENTS` scalars per array and :data:`MAX_PARAMETERS` in
   all; the stored arrays exactly those, each ``.npy`` header (shape, float
   dtype, and the member's size) agreeing before its data is read.

Then it reads each array and requires its values, **after casting to the
requested dtype**, to be finite and at most :data:`MAX_ABS_VALUE` in
magnitude (BatchNorm running variances also >= 0), and only then builds the
layers. The peak memory of a load is therefore a few times the size of the
model the file declares, itself capped at :data:`MAX_PARAMETERS` scalars.
"""

import inspect
import io as _stdio
import json
import os
import warnings
import zipfile

import numpy as np

from ._validate import PARSE_ERRORS, as_generator, check_float, check_float_dtype, check_int, source_name
from .images import MAX_IMAGE_PIXELS, image_size, load_image
from .layers import LAYER_TYPES

__all__ = [
    "save", "load", "load_metadata", "load_image", "image_size", "FORMAT", "FORMAT_VERSION", "ARCHITECTURE_KEY",
    "MAX_ARCHITECTURE_CHARS", "MAX_LAYERS", "MAX_FEATURES", "MAX_KERNEL_SIZE", "MAX_STRIDE", "MAX_PADDING",
    "MAX_ARRAY_ELEMENTS", "MAX_PARAMETERS", "MAX_ABS_VALUE", "MAX_IMAGE_PIXELS", "MAX_OUTPUT_SIZE", "MAX_DEPTH",
]

FORMAT = "minicam-model"
FORMAT_VERSION = 2
ARCHITECTURE_KEY = "__architecture__"

# Caps on what a model file may declare (see the module docstring). Each is far
# above any model minicam trains or converts (VGG-16's largest matrix,
# 25088 x 4096, is 103 M scalars) and far below what would exhaust a laptop.
MAX_ARCHITECTURE_CHARS = 1_000_000
"""Longest architecture JSON text, in characters (metadata included)."""
MAX_LAYERS = 1_000
"""Most layers in one model."""
MAX_FEATURES = 65_536
"""Largest ``in_channels``, ``out_channels``, ``in_features``, ``out_features``, ``num_features``."""
MAX_KERNEL_SIZE = 64
"""Largest ``kernel_size`` of a convolution or pooling layer."""
MAX_STRIDE = 64
"""Largest ``stride``."""
MAX_PADDING = 64
"""Largest ``padding``."""
MAX_OUTPUT_SIZE = 1024
"""Largest side of an adaptive pooling layer's ``output_size``."""
MAX_ARRAY_ELEMENTS = 2**27
"""Most scalars in one stored array (134 M: 1 GiB in float64)."""
MAX_PARAMETERS = 2**28
"""Most scalars in all stored arrays together (268 M: 2 GiB in float64)."""
MAX_ABS_VALUE = 1e12
"""Largest magnitude of a stored value. Trained weights and statistics are
many orders of magnitude smaller; 1e12 squared is still far from float32's
3.4e38, so a value at the cap cannot overflow a multiply-add by itself."""

_HEADER_KEYS = {"format", "version", "minicam_version", "layers", "metadata"}
_LAYER_KEYS = {"name", "type", "config"}
# Containers (format version 2): their keys instead of "config".
_CONTAINER_KEYS = {"Sequential": {"name", "type", "layers"}, "Residual": {"name", "type", "body", "shortcut", "after"}}
MAX_DEPTH = 16
"""Deepest nesting of containers in a model file."""
# Constructor arguments that are not architecture: the initialiser's seed
# and the dtype (chosen at load time).
_NOT_CONFIG = {"self", "rng", "dtype"}
# A fixed member timestamp (the earliest a zip can hold) makes files reproducible.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------


def _spec(name, node, path):
    """The JSON-ready description of one node (a layer or a container, recursively)."""
    from .model import Residual, Sequential

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


def _architecture(model):
    """The JSON-ready list of ``{"name", "type", "config"}`` of ``model``'s layers (containers nested)."""
    return [_spec(name, node, f"{name}.") for name, node in model.items()]


def save(model, path, metadata=None):
    """Save ``model``'s architecture and weights to one ``.npz`` file.

    Parameters
    ----------
    model : minicam.Sequential
        Its layers must be of the types in :data:`minicam.layers.LAYER_TYPES`.
    path : str or os.PathLike
        Written exactly there (no ``.npz`` appended), through a temporary file
        in the same folder and a rename, so an interrupted save never leaves a
        half-written file under ``path``.
    metadata : dict, optional
        JSON-serialisable information kept with the model (class names,
        input shape, how it was trained, ...); read it back with
        :func:`load_metadata`.

    Notes
    -----
    Arrays keep their dtype (a float32 model is saved in float32, half the
    size); :func:`load` casts them. The layers' modes (train/eval), cached
    activations, gradients and optimizer state are not saved.
    """
    from ._version import __version__
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (JSON object) or None, got {type(metadata).__name__}")
    layers = _architecture(model)
    header = {
        "format": FORMAT,
        # Version 2 added containers; a model without any is written as
        # version 1, readable by every minicam.
        "version": FORMAT_VERSION if len(layers) != sum(1 for _ in model.named_layers()) else 1,
        "minicam_version": __version__,
        "layers": layers,
        "metadata": metadata,
    }
    try:
        text = json.dumps(header, indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable (str, numbers, lists, dicts): {err}") from err
    arrays = model.state_dict()
    for key, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"model parameter {key} contains NaN or infinity; refusing to save it")

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        why = "is a folder" if os.path.isdir(path) else f"has no folder {folder!r}"
        raise ValueError(f"path must be a file in an existing folder, got {path!r}, which {why}")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key, value in [(ARCHITECTURE_KEY, np.array(text))] + list(arrays.items()):
                info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w") as f:
                    np.lib.format.write_array(f, value, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------

_MAX_NPY_HEADER = 10_000  # bytes; numpy's own limit for an .npy header
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


def _npy_header(zf, member, where):
    """``(shape, fortran_order, dtype, data_offset)`` of an ``.npy`` member, from its header only.

    The header's length is checked before the header is read, and the
    member's uncompressed size must be exactly header plus data, so that a
    damaged or hostile member is refused before anything is allocated for it.
    """
    try:
        with zf.open(member) as f:
            magic = f.read(8)
            if len(magic) != 8 or magic[:6] != b"\x93NUMPY":
                raise ValueError("no .npy magic string")
            version = (magic[6], magic[7])
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unsupported .npy version {version}")
            width = 2 if version == (1, 0) else 4
            raw = f.read(width)
            length = int.from_bytes(raw, "little")
            if len(raw) != width or length > _MAX_NPY_HEADER:
                raise ValueError(f"header length {length} is not in [0, {_MAX_NPY_HEADER}]")
            text = f.read(length)
        read = np.lib.format.read_array_header_1_0 if width == 2 else np.lib.format.read_array_header_2_0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's note on headers written by Python 2
            shape, fortran, dtype = read(_stdio.BytesIO(raw + text))
    except PARSE_ERRORS as err:
        raise ValueError(f"{where}: member {member!r} is not a readable .npy array ({err})") from err
    shape = tuple(shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"{where}: member {member!r} declares a negative shape {shape}")
    offset = 8 + width + length
    size = zf.getinfo(member).file_size
    if not dtype.hasobject and size != offset + int(np.prod(shape, dtype=object)) * dtype.itemsize:
        raise ValueError(
            f"{where}: member {member!r} holds {size} bytes, but its header declares {dtype} {shape}: "
            "the file is damaged"
        )
    return shape, fortran, dtype, offset


def _npy_data(zf, member, header, where):
    """The array of an ``.npy`` member whose header :func:`_npy_header` has checked."""
    shape, fortran, dtype, offset = header
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    try:
        with zf.open(member) as f:
            f.read(offset)
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"{len(data)} of {nbytes} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    except PARSE_ERRORS as err:
        # A bad CRC or a short stream: the file was damaged after it was written.
        raise ValueError(f"{where}: array {member[:-4]!r} cannot be read, the file is damaged ({err})") from err


def _check_header(header, where):
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


def _expected_arrays(specs, where, prefix=""):
    """``{"path.key": shape}`` of every array the (checked) specs imply."""
    expected = {}
    for spec in specs:
        name = prefix + spec["name"]
        if spec["type"] == "Sequential":
            expected.update(_expected_arrays(spec["layers"], where, name + "."))
        elif spec["type"] == "Residual":
            for part in (spec["body"], [spec["shortcut"]] if spec["shortcut"] else [], spec["after"] or []):
                expected.update(_expected_arrays(part, where, name + "."))
        else:
            expected.update(_check_config({**spec, "name": name}, where))
    return expected


def _build(spec, dtype, gen, where, prefix=""):
    """The node a checked spec describes (containers recursively)."""
    from .model import Residual, Sequential

    name = prefix + spec["name"]

    def chain(specs):
        return Sequential([(s["name"], _build(s, dtype, gen, where, name + ".")) for s in specs])

    if spec["type"] == "Sequential":
        return chain(spec["layers"])
    if spec["type"] == "Residual":
        shortcut = spec["shortcut"]
        return Residual(
            chain(spec["body"]),
            shortcut=None if shortcut is None else _build(shortcut, dtype, gen, where, name + "."),
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


def _check_values(key, value, where):
    """Refuse non-finite, absurd and (for variances) negative values of a cast array."""
    if not np.all(np.isfinite(value)):
        raise ValueError(
            f"{where}: array {key!r} contains NaN or infinity (after casting to {value.dtype}: "
            f"float32 overflows above 3.4e38)"
        )
    top = float(np.max(np.abs(value))) if value.size else 0.0
    if top > MAX_ABS_VALUE:
        raise ValueError(
            f"{where}: array {key!r} holds a value of magnitude {top:.3g}, above MAX_ABS_VALUE = {MAX_ABS_VALUE:g}"
        )
    if key.endswith(".running_var") and value.size and value.min() < 0:
        raise ValueError(f"{where}: array {key!r} is a variance but holds a negative value {float(value.min()):.6g}")


def _open(path):
    """``(where, source)``: a path string or a seekable binary file object."""
    if isinstance(path, (str, os.PathLike)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model file at {source_name(path)}")
        return source_name(path), os.fspath(path)
    if hasattr(path, "read") and hasattr(path, "seek"):
        return source_name(path), path
    raise TypeError(f"path must be a str, os.PathLike or a binary file object, got {type(path).__name__}")


def _load(path, dtype, rng):
    """Read and validate a model file; return ``(model, metadata)``."""
    from .model import Sequential

    where, source = _open(path)
    dtype = check_float_dtype(dtype)
    gen = as_generator(rng)
    not_zip = (
        f"{where} is not a minicam model file: not an .npz (zip) archive (a truncated download, or another kind of file)"
    )
    try:
        if not zipfile.is_zipfile(source):
            raise ValueError(not_zip)
        if not isinstance(source, str):
            source.seek(0)
        zf = zipfile.ZipFile(source)
    except PARSE_ERRORS as err:
        raise ValueError(not_zip if str(err) == not_zip else f"{not_zip} ({err})") from err
    with zf:
        members = zf.namelist()
        odd = [m for m in members if not m.endswith(".npy")]
        if odd:
            raise ValueError(f"{where}: unexpected archive members {odd!r:.200} (an .npz holds only .npy arrays)")
        if len(set(members)) != len(members):
            raise ValueError(f"{where}: duplicate archive members")
        keys = {m[:-4] for m in members}
        if ARCHITECTURE_KEY not in keys:
            raise ValueError(
                f"{where} is not a minicam model file: no {ARCHITECTURE_KEY!r} record (a plain .npz of arrays?); "
                f"it holds {sorted(keys)[:10]!r:.200}"
            )

        # 1. The architecture: a unicode string of JSON, its length capped
        #    from its header before it is read.
        member = ARCHITECTURE_KEY + ".npy"
        header = _npy_header(zf, member, where)
        shape, _, dt, _ = header
        if shape != () or dt.kind != "U":
            raise ValueError(f"{where}: {ARCHITECTURE_KEY!r} must be a 0-d unicode string, got dtype {dt} shape {shape}")
        if dt.itemsize // 4 > MAX_ARCHITECTURE_CHARS:
            raise ValueError(
                f"{where}: the architecture text declares {dt.itemsize // 4} characters, more than "
                f"MAX_ARCHITECTURE_CHARS = {MAX_ARCHITECTURE_CHARS}"
            )
        text = str(_npy_data(zf, member, header, where)[()])
        try:
            arch = json.loads(text)
        except (ValueError, RecursionError) as err:  # deep nesting exhausts the recursion limit
            raise ValueError(f"{where}: the architecture is not valid JSON ({str(err)[:200]})") from err
        specs, metadata = _check_header(arch, where)

        # 2. The arrays the architecture implies, from the configs alone:
        #    nothing is built or allocated yet.
        expected = _expected_arrays(specs, where)
        sizes = {key: int(np.prod(shape, dtype=object)) for key, shape in expected.items()}
        big = [key for key, n in sizes.items() if n > MAX_ARRAY_ELEMENTS]
        if big:
            raise ValueError(
                f"{where}: array {big[0]!r} of shape {expected[big[0]]} would hold {sizes[big[0]]} scalars, "
                f"more than MAX_ARRAY_ELEMENTS = {MAX_ARRAY_ELEMENTS}"
            )
        if sum(sizes.values()) > MAX_PARAMETERS:
            raise ValueError(
                f"{where}: the architecture declares {sum(sizes.values())} parameters, more than "
                f"MAX_PARAMETERS = {MAX_PARAMETERS}"
            )

        # 3. The stored arrays: the exact set, each header checked before any data is read.
        arrays = keys - {ARCHITECTURE_KEY}
        missing, extra = sorted(set(expected) - arrays), sorted(arrays - set(expected))
        if missing or extra:
            raise ValueError(
                f"{where}: arrays do not match the architecture: missing {missing!r:.300}, unexpected {extra!r:.300}"
            )
        headers = {}
        for key, want in expected.items():
            headers[key] = _npy_header(zf, key + ".npy", where)
            shape, _, dt, _ = headers[key]
            if dt.hasobject:
                raise ValueError(f"{where}: array {key!r} holds Python objects (a pickle); minicam never unpickles")
            if dt.kind != "f":
                raise ValueError(f"{where}: array {key!r} must have a float dtype, got {dt}")
            if shape != want:
                raise ValueError(f"{where}: array {key!r} must have shape {want} for this architecture, got {shape}")

        # 4. The values, checked in the dtype they will have.
        state = {}
        for key in expected:
            with np.errstate(over="ignore"):  # an overflow to infinity is refused just below
                value = _npy_data(zf, key + ".npy", headers[key], where).astype(dtype)
            _check_values(key, value, where)
            state[key] = value

    # 5. Only now the layers (their random initial weights are replaced at once).
    try:
        model = Sequential([(spec["name"], _build(spec, dtype, gen, where)) for spec in specs])
        model.load_state_dict(state)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err
    return model.eval(), metadata


def load(path, dtype=np.float64, rng=None):
    """Load a model saved by :func:`save`, after checking the whole file.

    The checks, their order and the caps on what a file may declare are
    listed in the module docstring (:mod:`minicam.io`): a file that passes
    them cannot make this function allocate more than a few times the
    model's own size, and one that fails raises ``ValueError`` before any
    layer is built.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    dtype : float64 (default) or float32
        dtype of the loaded parameters, whatever the file holds: a model
        trained and saved in float32 loads as float64, so the explanation
        identities hold to ~1e-12. The values are checked after casting: a
        float64 file holding 1e39 does not load as float32 (it would be
        infinite), nor does any value above :data:`MAX_ABS_VALUE`.
    rng : None, int or numpy.random.Generator
        Only used by Dropout layers (their masks) if the model is trained further.

    Returns
    -------
    minicam.Sequential
        In **eval mode** (ready for inference and explanations; call
        ``.train()`` to train it further).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    TypeError
        ``path`` or ``dtype`` of the wrong kind.
    ValueError
        Anything wrong with the file's contents: not a minicam model,
        damaged, truncated, inconsistent, above a cap, or holding a value that
        is non-finite, above :data:`MAX_ABS_VALUE` or (a BatchNorm running
        variance) negative. The message names the file and what is wrong;
        no other exception type escapes from a bad file.
    """
    return _load(path, dtype, rng)[0]


def load_metadata(path):
    """The ``metadata`` dict saved with a model (the whole file is checked as in :func:`load`)."""
    return _load(path, np.float64, 0)[1]
