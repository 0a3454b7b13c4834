"""Reading ``.npy`` members of a zip archive safely: the header first, capped, then exactly the data it declares."""

import io as _stdio
import warnings

import numpy as np

from .._validate import PARSE_ERRORS

__all__ = ["npy_header", "npy_data"]

_MAX_NPY_HEADER = 10_000  # bytes; numpy's own limit for an .npy header

def npy_header(zf, member, where):
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


def npy_data(zf, member, header, where):
    """The array of an ``.npy`` member whose header :func:`npy_header` has checked."""
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


