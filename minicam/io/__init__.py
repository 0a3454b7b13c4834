"""Saving and loading models: one ``.npz``, never pickle, every byte checked.

Images are read by :mod:`minicam.images` (:func:`load_image` and
:func:`image_size` are re-exported here). Rooms: :mod:`~minicam.io.caps` (the
format's constants and caps), :mod:`~minicam.io.npy` (reading ``.npy``
members safely), :mod:`~minicam.io.specs` (the architecture record).

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

import json
import os
import zipfile

import numpy as np

from .._validate import PARSE_ERRORS, as_generator, check_float_dtype, source_name
from ..images import MAX_IMAGE_PIXELS, image_size, load_image
from .caps import (
    ARCHITECTURE_KEY, FORMAT, FORMAT_VERSION, MAX_ABS_VALUE, MAX_ARCHITECTURE_CHARS, MAX_ARRAY_ELEMENTS, MAX_DEPTH,
    MAX_FEATURES, MAX_KERNEL_SIZE, MAX_LAYERS, MAX_OUTPUT_SIZE, MAX_PADDING, MAX_PARAMETERS, MAX_STRIDE,
)
from .npy import npy_data, npy_header
from .specs import architecture, build, check_header, expected_arrays

__all__ = [
    "save", "load", "load_metadata", "load_image", "image_size", "FORMAT", "FORMAT_VERSION", "ARCHITECTURE_KEY",
    "MAX_ARCHITECTURE_CHARS", "MAX_LAYERS", "MAX_FEATURES", "MAX_KERNEL_SIZE", "MAX_STRIDE", "MAX_PADDING",
    "MAX_ARRAY_ELEMENTS", "MAX_PARAMETERS", "MAX_ABS_VALUE", "MAX_IMAGE_PIXELS", "MAX_OUTPUT_SIZE", "MAX_DEPTH",
]

# A fixed member timestamp (the earliest a zip can hold) makes files reproducible.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------


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
    from .._version import __version__
    from ..model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (JSON object) or None, got {type(metadata).__name__}")
    layers = architecture(model)
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
    from ..model import Sequential

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
        header = npy_header(zf, member, where)
        shape, _, dt, _ = header
        if shape != () or dt.kind != "U":
            raise ValueError(f"{where}: {ARCHITECTURE_KEY!r} must be a 0-d unicode string, got dtype {dt} shape {shape}")
        if dt.itemsize // 4 > MAX_ARCHITECTURE_CHARS:
            raise ValueError(
                f"{where}: the architecture text declares {dt.itemsize // 4} characters, more than "
                f"MAX_ARCHITECTURE_CHARS = {MAX_ARCHITECTURE_CHARS}"
            )
        text = str(npy_data(zf, member, header, where)[()])
        try:
            arch = json.loads(text)
        except (ValueError, RecursionError) as err:  # deep nesting exhausts the recursion limit
            raise ValueError(f"{where}: the architecture is not valid JSON ({str(err)[:200]})") from err
        specs, metadata = check_header(arch, where)

        # 2. The arrays the architecture implies, from the configs alone:
        #    nothing is built or allocated yet.
        expected = expected_arrays(specs, where)
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
            headers[key] = npy_header(zf, key + ".npy", where)
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
                value = npy_data(zf, key + ".npy", headers[key], where).astype(dtype)
            _check_values(key, value, where)
            state[key] = value

    # 5. Only now the layers (their random initial weights are replaced at once).
    try:
        model = Sequential([(spec["name"], build(spec, dtype, gen, where)) for spec in specs])
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
