"""Datasets by name, for the command line and the training recipes."""

from .biased import biased_shapes
from .digits import cluttered_digits
from .synthetic import scenes, shapes

__all__ = ["DATASETS", "load_dataset"]

DATASETS = {
    "shapes": shapes,
    "scenes": scenes,
    "biased_shapes": biased_shapes,
    "digits": cluttered_digits,
    "cluttered_digits": cluttered_digits,
}


def load_dataset(name, n, seed=0, **kwargs):
    """Generate the dataset registered under ``name`` in ``DATASETS``.

    Parameters
    ----------
    name : str
        ``"shapes"``, ``"scenes"``, ``"biased_shapes"`` or ``"digits"`` (alias ``"cluttered_digits"``).
    n : int
        Number of images.
    seed : int or numpy.random.Generator
    **kwargs
        Passed on to the generator (e.g. ``split="test"`` for digits); an
        unknown keyword raises TypeError.

    Returns
    -------
    Dataset
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](n, seed, **kwargs)
