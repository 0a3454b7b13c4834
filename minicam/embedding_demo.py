"""``python -m minicam explain IMAGE --model shapes-embed --method embedding-db|embedding-grad-cam``.

An embedding network has no class to explain: the image is explained by
what makes it similar to its neighbours in a **gallery** of fresh shapes
(``shapes(500, seed=7)``, generated from that fixed seed):

- ``embedding-grad-cam``: Grad-CAM of its similarity to its 50 nearest gallery
  embeddings, weights averaged, top-16 channels kept (Chen et al. 2020;
  backward passes);
- ``embedding-db``: the weights of its cluster in the weight database built
  over the same gallery (bundled as ``data/shapes-embed-db.npz``, rebuilt by
  :func:`build_bundled_database`): one forward pass, no backward pass.
"""

import os
import sys
from pathlib import Path

from ._resources import bundled_file
from .datasets.catalog import load_dataset
from .embedding import cosine_neighbours, embed
from .embedding_db import N_CLUSTERS, build_database, load_database, save_database
from .explain.embedding import N_REFERENCES, default_k, embedding_cam

__all__ = ["EMBEDDING_METHODS", "GALLERY", "DATABASE_FILE", "DATABASE_COMMAND", "gallery", "bundled_database",
           "build_bundled_database", "explain_embedding_image"]

EMBEDDING_METHODS = ("embedding-grad-cam", "embedding-db")
"""Methods of ``explain`` for an embedding network (the same names as ``minicam.demo.EMBEDDING_METHODS``)."""
GALLERY = {"dataset": "shapes", "n": 500, "seed": 7}
"""The references and the database's training set: fresh shapes from a fixed seed."""
DATABASE_FILE = "shapes-embed-db.npz"
DATABASE_COMMAND = (
    "python -c \"from minicam.embedding_demo import build_bundled_database; "
    "build_bundled_database('data/shapes-embed-db.npz')\""
)
"""The command that rebuilt the bundled database (run from the repository root)."""


def gallery():
    """The gallery Dataset (:data:`GALLERY`)."""
    return load_dataset(GALLERY["dataset"], GALLERY["n"], seed=GALLERY["seed"])


def build_bundled_database(path, model=None):
    """Build the database of ``shapes-embed`` over the gallery (50 clusters, 50 references, top-16) and save it."""
    from .zoo import pretrained

    model = pretrained("shapes-embed") if model is None else model
    db = build_database(model, gallery().images, n_clusters=N_CLUSTERS, n_references=N_REFERENCES, rng=0)
    save_database(db, path)
    return db


def bundled_database():
    """The bundled :class:`~minicam.embedding_db.WeightDatabase` of ``shapes-embed`` (loaded and checked)."""
    with bundled_file(DATABASE_FILE, f"rebuild it with: {DATABASE_COMMAND}").open("rb") as f:
        return load_database(f)


def explain_embedding_image(x, model_name, method, layer=None, verbose=True, file=None):
    """Explain one image (1, C, H, W) of an embedding network with ``method``.

    Returns
    -------
    dict
        ``"map"`` (h, w), ``"neighbours"`` (the 5 nearest gallery labels' names,
        best first), ``"similarity"`` (cosine to the nearest), ``"note"``.
    """
    from .zoo import PRETRAINED, pretrained

    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {list(EMBEDDING_METHODS)} for an embedding network, got {method!r}")
    stream = sys.stdout if file is None else file
    model = pretrained(model_name)
    g = gallery()
    keys = embed(model, g.images)
    query = model.forward(x)
    order = cosine_neighbours(query, keys, N_REFERENCES)[0]
    names = PRETRAINED[model_name]["class_names"]
    neighbours = [names[int(g.labels[i])] for i in order[:5]]
    similarity = float(query[0] @ keys[order[0]])
    if verbose:
        print(f"{model_name}: nearest gallery shapes (of {len(keys)}, {GALLERY['dataset']} seed {GALLERY['seed']}): "
              f"{', '.join(neighbours)}; cosine to the nearest {similarity:.3f}", file=stream, flush=True)
    if method == "embedding-db":
        db = bundled_database()
        if layer is not None and layer != db.layer:
            raise ValueError(f"the bundled database holds weights of layer {db.layer!r}, got layer={layer!r}")
        explanation = db.explain(model, x)[0]
        note = f"cluster weights, top-{db.k}, no backward pass"
    else:
        k = default_k(64)
        explanation = embedding_cam(model, x, keys[order][None], layer=layer, k=k)[0]
        note = f"{N_REFERENCES} nearest gallery pairs averaged, top-{k}"
    return {"map": explanation, "neighbours": neighbours, "similarity": similarity, "note": note}


def explain_embedding_file(path, model_name, method, class_idx=None, layer=None, out=None, dpi=120, verbose=True,
                           file=None):
    """The ``explain`` command's branch for an embedding network: read, explain, draw two panels.

    :func:`minicam.demo.explain_image` calls it, after its own checks of the
    path, ``out`` and ``dpi``, for an embedding model or an embedding method.
    """
    from . import io, viz
    from .zoo import PRETRAINED

    stream = sys.stdout if file is None else file
    if PRETRAINED[model_name].get("architecture") != "embed":
        embed_models = sorted(n for n, i in PRETRAINED.items() if i.get("architecture") == "embed")
        raise ValueError(f"method {method!r} explains an embedding network, one of {embed_models}; "
                         f"{model_name} is a classifier, got model {model_name!r}")
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"{model_name} is an embedding network (no class scores): method must be one of "
                         f"{list(EMBEDDING_METHODS)}, got {method!r}")
    if class_idx is not None:
        raise ValueError(f"{model_name} is an embedding network and has no classes to explain, got class {class_idx!r}")
    C, H, W = PRETRAINED[model_name]["input_shape"]
    path = Path(os.fspath(path))
    x = io.load_image(path, size=(H, W), mode="RGB" if C == 3 else "L", verbose=verbose)
    res = explain_embedding_image(x, model_name, method, layer=layer, verbose=verbose, file=file)
    result = {"map": res["map"], "image": x[0], "neighbours": res["neighbours"], "similarity": res["similarity"],
              "out": None}
    if out is not None:
        fig, axes = viz.figure(1, 2, panel=3.0)
        viz.draw_image(axes[0, 0], x[0])
        viz.clean_axes(axes[0, 0])
        axes[0, 0].set_title(f"{model_name} input ({H}x{W})\nnearest: {', '.join(res['neighbours'][:3])}", fontsize=8)
        h, w = res["map"].shape
        viz.overlay(x[0], res["map"], ax=axes[0, 1],
                    title=f"{method}\n{res['note']}\n({h}x{w} map, bilinear up, min-max)")
        axes[0, 1].title.set_fontsize(7)
        fig.savefig(os.fspath(out), dpi=dpi)
        result["out"] = str(out)
        if verbose:
            print(f"wrote {out}", file=stream, flush=True)
    return result
