"""Where the bundled files are: the one lookup shared by the datasets and the model zoo.

The repository's ``data/`` folder installs as the package ``minicam.data``
(see ``pyproject.toml``), so a bundled file is found the same way from an
installed wheel and, failing that, from a source checkout's ``data/``.
"""

import importlib.resources
from pathlib import Path

__all__ = ["bundled_file"]

_CHECKOUT_DATA = Path(__file__).resolve().parent.parent / "data"


def bundled_file(filename, rebuild_hint=""):
    """A readable path (``Traversable`` or ``Path``) to the bundled file ``filename``.

    Parameters
    ----------
    filename : str
        A file name in ``data/`` (e.g. ``"shapes-gap.npz"``).
    rebuild_hint : str
        Appended to the error message (e.g. the command that rebuilds the file).

    Raises
    ------
    FileNotFoundError
        Neither the installed package ``minicam.data`` nor the checkout's
        ``data/`` holds the file.
    """
    try:
        resource = importlib.resources.files("minicam.data") / filename
        if resource.is_file():
            return resource
    except (ImportError, TypeError, ValueError, OSError):
        pass  # a plain source checkout has no minicam.data package
    path = _CHECKOUT_DATA / filename
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"bundled file {filename} not found in the installed package minicam.data nor in {_CHECKOUT_DATA}"
        + (f"; {rebuild_hint}" if rebuild_hint else "")
    )
