"""Input checks shared by the whole package.

Every public function validates its input with these helpers, so that bad
input fails at the call with a message that names the argument, what was
expected and what was received -- never deep inside NumPy.
"""

import numbers
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np


class StateError(RuntimeError, ValueError):
    """An object was used in the wrong state (e.g. ``backward`` before ``forward``).

    Subclasses both ``RuntimeError`` (what it is) and ``ValueError`` (so that
    callers catching bad input catch it too).
    """


def check_batch(x, name="x", min_ndim=1):
    """Refuse an input without a batch axis or with no sample in it (N >= 1).

    ``min_ndim=2`` also refuses a 1-D array, whose only axis would be taken
    for the batch (the explanations need samples with features).

    An empty batch would run through most layers and then fail inside a
    backward with a reshape error, or give a NaN mean: a bug upstream (an
    empty split, a bad slice) that should be named where it enters.
    """
    if x.ndim < max(1, min_ndim) or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch (N, ...) with N >= 1, got shape {x.shape}")
    return x


def check_float_array(x, name, ndim=None, finite=True):
    """Return ``x`` if it is a floating-point ndarray of the right rank.

    Parameters
    ----------
    x : object
        The value to check.
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Accepted number(s) of dimensions.
    finite : bool
        Also refuse NaN and infinity.

    Raises
    ------
    TypeError
        Not an ndarray, or not a floating-point dtype.
    ValueError
        Wrong number of dimensions, or non-finite values.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of floats, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{name} must have a floating-point dtype (float64 or float32), got dtype {x.dtype}"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must be {want}-D, got shape {x.shape} ({x.ndim}-D)")
    if finite and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinity")
    return x


def check_int(value, name, minimum=None):
    """Return ``value`` as an int if it is an integer (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_float(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Return ``value`` as a float if it is a real number inside the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    too_low = low is not None and (value < low or (value == low and not low_inclusive))
    too_high = high is not None and (value > high or (value == high and not high_inclusive))
    if too_low or too_high:
        if high is None:
            want = f"{'>=' if low_inclusive else '>'} {low}"
        elif low is None:
            want = f"{'<=' if high_inclusive else '<'} {high}"
        else:
            want = f"in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value


def check_float_dtype(dtype, name="dtype"):
    """Return ``np.dtype(dtype)`` if it is float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be a NumPy floating dtype, got {dtype!r}") from err
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def as_generator(rng, name="rng"):
    """Turn ``rng`` (None, an int seed or a Generator) into a ``numpy.random.Generator``.

    ``None`` draws fresh entropy from the operating system: pass a seed to
    reproduce. There is no global random state anywhere in minicam.
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{name} seed must be >= 0, got {rng!r}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def check_bool(value, name):
    """Return ``value`` if it is ``True`` or ``False`` (not a truthy string, number or array)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_pair(value, name, minimum=1):
    """An int or a pair of ints ``(rows, cols)``, each >= ``minimum``, as a tuple of two ints.

    The one parser of every "int or (h, w)" argument: sizes, windows, strides.

    Parameters
    ----------
    value : int or (int, int)
        An int means the same value along both axes.
    name : str
        Argument name used in error messages.
    minimum : int or None
        Smallest accepted value of each entry.

    Returns
    -------
    (int, int)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{name} must be an int or a pair of ints (rows, cols), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints (rows, cols), got {value!r}")
        if minimum is not None and v < minimum:
            raise ValueError(f"{name} must be >= {minimum} along both axes, got {tuple(value)!r}")
        out.append(int(v))
    return tuple(out)


# What parsing hostile bytes can raise: zipfile (BadZipFile, NotImplementedError
# for an unknown compression, RuntimeError for an encrypted member), zlib,
# numpy's .npy header parser (ValueError, SyntaxError, tokenize.TokenError),
# struct, json (ValueError, RecursionError is a RuntimeError) and Pillow
# (OSError, SyntaxError, ...). Readers turn each into one ValueError naming the file.
PARSE_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
    OverflowError, NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError, UnicodeError,
)


def source_name(path):
    """How an error message names a file: its path, an open file's ``.name``, or its type."""
    if isinstance(path, (str, os.PathLike)):
        return repr(os.fspath(path))
    name = getattr(path, "name", None)  # an open file names its path
    return repr(name) if isinstance(name, str) else f"<{type(path).__name__}>"
