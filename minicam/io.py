"""Saving and loading models (one ``.npz``, never pickle) and loading images.

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
  the layer's ``config()``: its constructor's hyper-parameters.
- one float array per parameter and buffer, named ``"<layer>.<key>"``
  (``conv1.W``, ``conv1.b``, ``bn1.running_mean``: PyTorch's state-dict names).

:func:`load` checks everything before it builds anything: a zip archive, the
JSON and its fields, known layer types with valid configurations, every
expected array present with exactly its shape and a float dtype (read from
the array's header, before its data), no extra array, finite values. Any
problem is a ``ValueError`` naming the file and what is wrong. Arrays are read
with ``allow_pickle=False``: an object array is refused, never unpickled.

Saved files are byte-for-byte reproducible: the archive members carry a fixed
timestamp, so the same weights give the same file.
"""

import inspect
import json
import os
import zipfile
import zlib

import numpy as np

from ._validate import as_generator, check_float_dtype, check_int
from .layers import LAYER_TYPES

__all__ = ["save", "load", "load_metadata", "load_image", "FORMAT", "FORMAT_VERSION", "ARCHITECTURE_KEY"]

FORMAT = "minicam-model"
FORMAT_VERSION = 1
ARCHITECTURE_KEY = "__architecture__"
_HEADER_KEYS = {"format", "version", "minicam_version", "layers", "metadata"}
_LAYER_KEYS = {"name", "type", "config"}
# Constructor arguments that are not architecture: the initialiser's seed
# and the dtype (chosen at load time).
_NOT_CONFIG = {"self", "rng", "dtype"}
# A fixed member timestamp (the earliest a zip can hold) makes files reproducible.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------


def _architecture(model):
    """The JSON-ready list of ``{"name", "type", "config"}`` of ``model``'s layers."""
    layers = []
    for name, layer in model.items():
        tname = type(layer).__name__
        if LAYER_TYPES.get(tname) is not type(layer):
            # A subclass may compute something else under the same config:
            # saving it as its parent would load a different model.
            raise TypeError(
                f"layer {name!r} is a {type(layer).__module__}.{type(layer).__qualname__}; a minicam file can "
                f"only describe the layer types {sorted(LAYER_TYPES)}"
            )
        layers.append({"name": name, "type": tname, "config": layer.config()})
    return layers


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
    from . import __version__
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (JSON object) or None, got {type(metadata).__name__}")
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "minicam_version": __version__,
        "layers": _architecture(model),
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


def _where(path):
    return repr(os.fspath(path)) if isinstance(path, (str, os.PathLike)) else f"<{type(path).__name__}>"


def _array_header(zf, member, where):
    """``(shape, dtype)`` of an ``.npy`` member, read from its header only."""
    try:
        with zf.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{where}: member {member!r} is not a readable .npy array ({err})") from err
    return tuple(shape), dtype


def _read_array(zf, member, where):
    try:
        with zf.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        # A bad CRC or a short stream: the file was damaged after it was written.
        raise ValueError(f"{where}: array {member[:-4]!r} cannot be read, the file is damaged ({err})") from err


def _check_header(header, where):
    """Validate the decoded JSON; return its ``layers`` and ``metadata``."""
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the architecture must be a JSON object, got {type(header).__name__}")
    if header.get("format") != FORMAT:
        raise ValueError(f"{where}: not a minicam model file (format {header.get('format')!r}, expected {FORMAT!r})")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{where}: the format version must be an int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where}: written by a newer minicam (format version {version}); this minicam reads "
            f"version {FORMAT_VERSION}: upgrade minicam"
        )
    if version < 1:
        raise ValueError(f"{where}: invalid format version {version!r}")
    unknown = sorted(set(header) - _HEADER_KEYS)
    missing = sorted({"format", "version", "layers"} - set(header))
    if unknown or missing:
        raise ValueError(f"{where}: architecture fields: missing {missing}, unexpected {unknown}")
    layers = header["layers"]
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: 'layers' must be a non-empty list, got {layers!r:.80}")
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
    for i, spec in enumerate(layers):
        if not isinstance(spec, dict) or set(spec) != _LAYER_KEYS:
            raise ValueError(
                f"{where}: layers[{i}] must be an object with exactly the keys {sorted(_LAYER_KEYS)}, got {spec!r:.120}"
            )
        if not isinstance(spec["name"], str):
            raise ValueError(f"{where}: layers[{i}] name must be a string, got {spec['name']!r}")
        if spec["type"] not in LAYER_TYPES:
            raise ValueError(
                f"{where}: layer {spec['name']!r} has unknown type {spec['type']!r}; known types: {sorted(LAYER_TYPES)}"
            )
        if not isinstance(spec["config"], dict):
            raise ValueError(f"{where}: layer {spec['name']!r} config must be a JSON object, got {spec['config']!r:.80}")
    return layers, metadata


def _build_layer(spec, dtype, gen, where):
    """Construct one layer from its checked spec; its config must round-trip exactly."""
    cls = LAYER_TYPES[spec["type"]]
    name, config = spec["name"], spec["config"]
    sig = inspect.signature(cls.__init__).parameters
    allowed = set(sig) - _NOT_CONFIG
    required = {k for k in allowed if sig[k].default is inspect.Parameter.empty}
    unknown, missing = sorted(set(config) - allowed), sorted(required - set(config))
    if unknown or missing:
        raise ValueError(
            f"{where}: layer {name!r} ({spec['type']}) config: missing {missing}, unexpected {unknown} "
            f"(valid keys: {sorted(allowed)})"
        )
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


def _load(path, dtype, rng):
    """Read and validate a model file; return ``(model, metadata)``."""
    from .model import Sequential

    where = _where(path)
    if isinstance(path, (str, os.PathLike)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model file at {where}")
        source = os.fspath(path)
    elif hasattr(path, "read") and hasattr(path, "seek"):
        source = path
    else:
        raise TypeError(f"path must be a str, os.PathLike or a binary file object, got {type(path).__name__}")
    dtype = check_float_dtype(dtype)
    gen = as_generator(rng)

    if not zipfile.is_zipfile(source):
        raise ValueError(
            f"{where} is not a minicam model file: not an .npz (zip) archive (a truncated download, or another kind of file)"
        )
    if not isinstance(source, str):
        source.seek(0)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(f"{where} is not a readable .npz archive: {err}") from err
    with zf:
        members = zf.namelist()
        odd = [m for m in members if not m.endswith(".npy")]
        if odd:
            raise ValueError(f"{where}: unexpected archive members {odd} (an .npz holds only .npy arrays)")
        if len(set(members)) != len(members):
            raise ValueError(f"{where}: duplicate archive members")
        keys = {m[:-4] for m in members}
        if ARCHITECTURE_KEY not in keys:
            raise ValueError(
                f"{where} is not a minicam model file: no {ARCHITECTURE_KEY!r} record (a plain .npz of arrays?); "
                f"it holds {sorted(keys)[:10]}"
            )

        # 1. The architecture: a unicode string of JSON.
        member = ARCHITECTURE_KEY + ".npy"
        shape, dt = _array_header(zf, member, where)
        if shape != () or dt.kind != "U":
            raise ValueError(f"{where}: {ARCHITECTURE_KEY!r} must be a 0-d unicode string, got dtype {dt} shape {shape}")
        text = str(_read_array(zf, member, where)[()])
        try:
            header = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: the architecture is not valid JSON ({err})") from err
        specs, metadata = _check_header(header, where)

        # 2. The layers, each from a checked config.
        named = [(spec["name"], _build_layer(spec, dtype, gen, where)) for spec in specs]
        try:
            model = Sequential(named)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: invalid layer names: {err}") from err

        # 3. The arrays: the exact set, each shape and dtype checked on its
        #    header before its data is read.
        expected = {k: v.shape for k, v in model.named_parameters()}
        expected.update({k: v.shape for k, v in model.named_buffers()})
        arrays = keys - {ARCHITECTURE_KEY}
        missing, extra = sorted(set(expected) - arrays), sorted(arrays - set(expected))
        if missing or extra:
            raise ValueError(f"{where}: arrays do not match the architecture: missing {missing}, unexpected {extra}")
        state = {}
        for key, want in expected.items():
            shape, dt = _array_header(zf, key + ".npy", where)
            if dt.hasobject:
                raise ValueError(f"{where}: array {key!r} holds Python objects (a pickle); minicam never unpickles")
            if dt.kind != "f":
                raise ValueError(f"{where}: array {key!r} must have a float dtype, got {dt}")
            if shape != tuple(want):
                raise ValueError(f"{where}: array {key!r} must have shape {tuple(want)} for this architecture, got {shape}")
            value = _read_array(zf, key + ".npy", where)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{where}: array {key!r} contains NaN or infinity")
            state[key] = value
    model.load_state_dict(state)  # casts to the layers' dtype
    return model.eval(), metadata


def load(path, dtype=np.float64, rng=None):
    """Load a model saved by :func:`save`, after checking the whole file.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    dtype : float64 (default) or float32
        dtype of the loaded parameters, whatever the file holds: a model
        trained and saved in float32 loads as float64, so the explanation
        identities hold to ~1e-12.
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
    ValueError
        The file is not a minicam model, or is damaged, truncated or
        inconsistent; the message says what is wrong. No model is returned.
    """
    return _load(path, dtype, rng)[0]


def load_metadata(path):
    """The ``metadata`` dict saved with a model (the whole file is checked as in :func:`load`)."""
    return _load(path, np.float64, 0)[1]


# ----------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------


def load_image(path, size=None, mode="RGB", verbose=True):
    """Read an image file into a ``(1, C, H, W)`` float64 array in [0, 1].

    Needs Pillow (``pip install pillow``), imported here so that the core
    of minicam depends on NumPy only.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    size : None, int or (int, int)
        Resize to ``size x size`` or to ``(height, width)`` with Pillow's
        bilinear filter (which widens its support to antialias when
        shrinking). The aspect ratio is not kept; nothing is cropped.
        ``None`` keeps the file's size.
    mode : {"RGB", "L"}
        Three colour channels or one grey channel (e.g. ``"L"`` for
        ``digits-gap``). Transparency is dropped; palettes are expanded.
    verbose : bool, default True
        Print a line when the image is resized.

    Returns
    -------
    ndarray, float64, shape (1, 3, H, W) for "RGB" or (1, 1, H, W) for "L"
        Pixel values divided by 255.
    """
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("load_image needs Pillow, which minicam's core does not require: pip install pillow") from err
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if size is not None:
        if isinstance(size, (tuple, list)):
            if len(size) != 2:
                raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}")
            size = (check_int(size[0], "size[0]", minimum=1), check_int(size[1], "size[1]", minimum=1))
        else:
            s = check_int(size, "size", minimum=1)
            size = (s, s)
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert(mode)
    except (OSError, ValueError) as err:
        # Pillow's UnidentifiedImageError is an OSError.
        raise ValueError(f"path {_where(path)} is not a readable image: {err}") from err
    if size is not None and (img.height, img.width) != size:
        if verbose:
            print(
                f"load_image: resized {_where(path)} from {img.height}x{img.width} to {size[0]}x{size[1]} "
                "(height x width, bilinear)",
                flush=True,
            )
        img = img.resize((size[1], size[0]), resample=Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float64) / 255.0
    if arr.ndim == 2:
        arr = arr[None]  # (1, H, W)
    else:
        arr = arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return arr[None].copy()  # (1, C, H, W)
