"""Dataset bias: a model that learned a spurious cue, and Grad-CAM showing it (Selvaraju et al. 2017, Sec. 6.3).

The paper trains a "doctor vs nurse" classifier on images where the
profession follows the gender, finds with Grad-CAM that it looks at faces and
hair, and repairs it by rebalancing the training set. Here the same story
runs in seconds on :func:`minicam.datasets.biased_shapes`: a corner mark whose
colour follows the class.

- :data:`BIAS_RECIPE`, :func:`train_bias_model`: a small GAP network trained
  in float32 on biased data (``bias=1``: the cue gives the label) or on
  decorrelated data (``bias=0``: the repair). Both results are bundled
  (:data:`BIAS_MODELS`, :func:`bias_model`) and rebuilt by
  ``python -c "from minicam.diagnose import bias; bias.main(['--out', 'data'])"``.
- :func:`cue_vs_object`: Grad-CAM's energy on the cue and on the object,
  and where its peak falls.
- :func:`bias_study`: accuracy on biased and decorrelated test data, and
  where each model looks, one row per model.
"""

import argparse

import numpy as np

from .. import io, train
from .._resources import bundled_file
from .._validate import check_int
from ..datasets.biased import BiasedDataset, biased_shapes
from ..explain.cams import grad_cam
from ..explain.postprocess import upsample
from ..metrics.localization import energy_in_mask
from ..optim import Adam
from ..zoo import gap_net

__all__ = ["BIAS_RECIPE", "BIAS_MODELS", "CUE_MARGIN", "train_bias_model", "bias_model", "cue_region", "cue_vs_object",
           "bias_study"]

BIAS_RECIPE = {"widths": (8, 8, 16, 16, 32), "n_train": 4000, "epochs": 6, "batch_size": 32, "lr": 5e-3, "seed": 0}
"""The training recipe of both bias models: a narrow :func:`gap_net` (so that it trains in ~10 s on 2 cores),
Adam with a cosine schedule, float32."""

BIAS_MODELS = {
    "biased": {"file": "shapes-biased-gap.npz", "bias": 1.0},
    "balanced": {"file": "shapes-balanced-gap.npz", "bias": 0.0},
}
"""The two bundled bias models: trained by :func:`train_bias_model` on ``biased_shapes(bias=1)`` (the cue
names the class) and on ``biased_shapes(bias=0)`` (the cue is noise: the repair). Same images, same seeds;
only the cue's colours differ."""

CUE_MARGIN = 4
"""Pixels the cue's square is grown by when Grad-CAM's energy on it is measured (one cell of an 8x8 map)."""

_COMMAND = "python -c \"from minicam.diagnose import bias; bias.main(['--out', 'data'])\""


def train_bias_model(bias, *, widths=BIAS_RECIPE["widths"], n_train=BIAS_RECIPE["n_train"],
                     epochs=BIAS_RECIPE["epochs"], batch_size=BIAS_RECIPE["batch_size"], lr=BIAS_RECIPE["lr"],
                     seed=BIAS_RECIPE["seed"], verbose=False, file=None):
    """Train :func:`minicam.zoo.gap_net` on ``biased_shapes(n_train, bias=bias)``.

    Parameters
    ----------
    bias : float in [0, 1]
        The training data's bias (see :func:`minicam.datasets.biased_shapes`).
    widths, n_train, epochs, batch_size, lr, seed
        :data:`BIAS_RECIPE` by default. ``SeedSequence(seed)`` spawns the
        data's, the weights' and the shuffles' generators, so the biased and
        the balanced model see the same shapes in the same order.
    verbose : bool
        Print one line per epoch.

    Returns
    -------
    Sequential
        float32, eval mode.
    """
    seed = check_int(seed, "seed", minimum=0)
    data_ss, init_ss, shuffle_ss = np.random.SeedSequence(seed).spawn(3)
    data = biased_shapes(n_train, np.random.default_rng(data_ss), bias=bias, dtype=np.float32)
    model = gap_net(widths=widths, rng=np.random.default_rng(init_ss), dtype=np.float32)
    train.fit(model, (data.images, data.labels), epochs, batch_size, Adam(model, lr=lr),
              np.random.default_rng(shuffle_ss), lr_schedule=train.cosine_schedule(lr, epochs),
              verbose=verbose, file=file)
    return model.eval()


def bias_model(name):
    """A bundled bias model, float64, eval mode.

    Parameters
    ----------
    name : {"biased", "balanced"}
        See :data:`BIAS_MODELS`.
    """
    if not isinstance(name, str) or name not in BIAS_MODELS:
        raise ValueError(f"name must be one of {sorted(BIAS_MODELS)}, got {name!r}")
    resource = bundled_file(BIAS_MODELS[name]["file"], f"rebuild it with: {_COMMAND}")
    with resource.open("rb") as f:
        return io.load(f, dtype=np.float64)


def cue_region(ds, margin=CUE_MARGIN):
    """The cue's square grown by ``margin`` px on every side, without the object's pixels: (n, H, W) bool.

    Grad-CAM's map is coarse (8x8 for 32x32 images, one cell per 4 px) and the
    convolutions' zero padding pulls a corner cue's response one cell inwards,
    so a 5 px cue shows up around it rather than exactly on it (the peak of the
    biased model's map lands 1-2 px outside the square). Measuring on the
    square grown by one cell (4 px) counts that response; the object's pixels
    are left out so that no pixel counts twice.
    """
    margin = check_int(margin, "margin", minimum=0)
    n, height, width = ds.cue_masks.shape
    rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    any_r, any_c = ds.cue_masks.any(axis=2), ds.cue_masks.any(axis=1)  # (n, H), (n, W)
    r0, r1 = any_r.argmax(axis=1) - margin, height - any_r[:, ::-1].argmax(axis=1) + margin
    c0, c1 = any_c.argmax(axis=1) - margin, width - any_c[:, ::-1].argmax(axis=1) + margin
    grown = ((rows >= r0[:, None, None]) & (rows < r1[:, None, None])
             & (cols >= c0[:, None, None]) & (cols < c1[:, None, None]))
    return grown & ~ds.masks


def cue_vs_object(model, ds, class_idx=None, layer=None, margin=CUE_MARGIN):
    """Where Grad-CAM looks: its energy on the cue and on the object, and where its peak falls.

    Parameters
    ----------
    model : Sequential
    ds : BiasedDataset
    class_idx : int, sequence of n ints, or None
        The class explained; ``None`` is the predicted class.
    layer : str, optional
    margin : int
        The cue is measured on :func:`cue_region` (its square grown by
        ``margin`` px, 4 = one cell of the 8x8 map; 0 for the square itself).

    Returns
    -------
    dict of ndarray, each shape (n,)
        ``"cue_energy"``, ``"object_energy"``: share of the (upsampled,
        bilinear) map's positive mass on the cue's region and on the object's pixels
        (:func:`minicam.metrics.energy_in_mask`); ``"peak_on_cue"``,
        ``"peak_on_object"``: the map's maximum lies there (a blank map is neither).

    Notes
    -----
    The cue region covers at most 169 px (13x13 with ``margin=4``) and the
    object 60 to 250 px of the 1024: a map spread evenly would put about 15%
    on either.
    """
    if not isinstance(ds, BiasedDataset):
        raise TypeError(f"ds must be a BiasedDataset from minicam.datasets.biased_shapes, got {type(ds).__name__}")
    region = cue_region(ds, margin)
    maps = upsample(grad_cam(model, ds.images, class_idx, layer=layer), ds.images.shape[2:])
    cue, _ = energy_in_mask(maps, region)
    obj, _ = energy_in_mask(maps, ds.masks)
    n = len(maps)
    flat = maps.reshape(n, -1)
    peak = flat.argmax(axis=1)
    blank = flat.max(axis=1) == flat.min(axis=1)
    return {
        "cue_energy": cue,
        "object_energy": obj,
        "peak_on_cue": region.reshape(n, -1)[np.arange(n), peak] & ~blank,
        "peak_on_object": ds.masks.reshape(n, -1)[np.arange(n), peak] & ~blank,
    }


def bias_study(models, n=500, seed=123):
    """Accuracy with and without the bias, and where each model's Grad-CAM looks.

    Parameters
    ----------
    models : dict of name -> Sequential
    n, seed : int
        Size and seed of the two test sets: ``biased_shapes(n, seed, bias=1)``
        and ``biased_shapes(n, seed, bias=0)`` (the same shapes; only the
        cue's colours differ).

    Returns
    -------
    list of dict
        One row per model: ``model``, ``acc_biased``, ``acc_decorrelated``,
        and on the decorrelated data, for the predicted class: ``cue_energy``,
        ``object_energy`` (means), ``peak_on_cue``, ``peak_on_object``
        (shares).
    """
    biased = biased_shapes(n, seed, bias=1.0)
    fair = biased_shapes(n, seed, bias=0.0)
    rows = []
    for name, model in models.items():
        where = cue_vs_object(model, fair)
        rows.append({
            "model": name,
            "acc_biased": train.evaluate(model, biased.images, biased.labels)["accuracy"],
            "acc_decorrelated": train.evaluate(model, fair.images, fair.labels)["accuracy"],
            **{key: float(value.mean()) for key, value in where.items()},
        })
    return rows


def main(argv=None):
    """Rebuild the bundled bias models (see :data:`BIAS_MODELS`) into the folder ``--out``."""
    parser = argparse.ArgumentParser(prog="minicam.diagnose.bias.main", description=main.__doc__)
    parser.add_argument("--out", required=True, help="folder to write the .npz files to")
    args = parser.parse_args(argv)
    for name, spec in BIAS_MODELS.items():
        print(f"{name}: bias {spec['bias']}, recipe {BIAS_RECIPE}", flush=True)
        model = train_bias_model(spec["bias"], verbose=True)
        metadata = {"dataset": "biased_shapes", "dataset_kwargs": {"bias": spec["bias"]}, "input_shape": [3, 32, 32],
                    "class_names": ["circle", "square", "triangle", "cross"], "architecture": "gap",
                    "training": {key: list(v) if isinstance(v, tuple) else v for key, v in BIAS_RECIPE.items()},
                    "command": _COMMAND}
        io.save(model, f"{args.out}/{spec['file']}", metadata=metadata)
    return 0

