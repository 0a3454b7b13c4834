"""Hand-built model files for the io tests: the attacker's side of ``minicam.io.load``.

Files are assembled member by member from raw ``.npy`` bytes, so a test can
write what ``numpy`` and ``minicam.io.save`` never would: headers that lie,
object arrays, garbled zip records.
"""

import io as stdio
import json
import zipfile

import numpy as np

from minicam.io import ARCHITECTURE_KEY


def npy_bytes(value, header=None):
    """The ``.npy`` bytes of ``value`` (object arrays allowed); ``header`` replaces the header text.

    Parameters
    ----------
    value : array_like
    header : str, optional
        A Python-literal dict to write instead of numpy's own header (its
        data is still ``value``'s bytes), e.g. one that declares another shape.
    """
    value = np.asanyarray(value)
    buf = stdio.BytesIO()
    np.lib.format.write_array(buf, value, allow_pickle=True)
    raw = buf.getvalue()
    if header is None:
        return raw
    length = int.from_bytes(raw[8:10], "little")
    data = raw[10 + length:]
    text = header.encode("latin1") + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def zip_bytes(members, compression=zipfile.ZIP_DEFLATED):
    """A zip archive of ``{name: bytes}`` (``".npy"`` is appended to each name)."""
    buf = stdio.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for key, raw in members.items():
            zf.writestr(key + ".npy", raw)
    return buf.getvalue()


def members_of(path):
    """``{name: .npy bytes}`` of an ``.npz`` file (the raw members, not parsed)."""
    with zipfile.ZipFile(path) as zf:
        return {name[:-4]: zf.read(name) for name in zf.namelist()}


def architecture(members):
    """The decoded JSON architecture of raw members."""
    return json.loads(str(np.load(stdio.BytesIO(members[ARCHITECTURE_KEY]))))


def with_architecture(members, arch):
    """Members whose architecture record is ``arch`` (a JSON-ready object, or text as is)."""
    text = arch if isinstance(arch, str) else json.dumps(arch)
    return dict(members, **{ARCHITECTURE_KEY: npy_bytes(np.array(text))})


def central_directory_offsets(data):
    """Offsets of the central-directory records (``PK\\x01\\x02``) in zip bytes."""
    offsets, start = [], 0
    while (i := data.find(b"PK\x01\x02", start)) >= 0:
        offsets.append(i)
        start = i + 4
    return offsets


def patch_zip(data, flag_bits=None, compress_type=None):
    """Zip bytes with every member's general-purpose flags or compression method overwritten.

    Both the local headers (``PK\\x03\\x04``: flags at +6, method at +8) and the
    central directory (``PK\\x01\\x02``: flags at +8, method at +10) are patched,
    as a hostile file would be.
    """
    out = bytearray(data)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            if flag_bits is not None:
                out[i + flag_at:i + flag_at + 2] = flag_bits.to_bytes(2, "little")
            if compress_type is not None:
                out[i + flag_at + 2:i + flag_at + 4] = compress_type.to_bytes(2, "little")
            start = i + 4
    return bytes(out)
