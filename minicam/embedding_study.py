"""The embedding-network study (issue 12): the paper's comparison on held-out shapes with masks.

Chen et al. 2020 ("Adapting Grad-CAM for Embedding Networks", WACV) compare,
on CUB-200 masks, Grad-CAM of one pair, of many pairs averaged, with the
top-k channels, and transferred from a weight database without a backward
pass, with Grad-CAM and Grad-CAM++ as the base. :func:`run` does the same
on the bundled ``shapes-embed`` and fresh held-out shapes, with a random and
a centred-Gaussian baseline, and :func:`format_table` prints it.

Every query is explained from the gallery only (no label is used):

- *one pair*: the query and its nearest gallery embedding (the top-1
  retrieval result);
- *N pairs*: its ``n_references`` nearest gallery embeddings, weights averaged;
- *N pairs + top-k*: the same, keeping the ``k`` largest weights;
- *database*: :func:`minicam.embedding_db.build_database` over the gallery;
  the query borrows its cluster's (or its nearest gallery image's) weights.

Metrics (:mod:`minicam.metrics`, on maps upsampled bilinearly to 32x32):
energy inside the object's mask, the pointing game (tolerance 0), and the
IoU of the map thresholded at ``threshold`` times its maximum with the mask
(:func:`mask_iou`). Time per image: the fastest of ``repeats`` wall-clock runs of the method on the whole
batch of queries divided by their number (the gallery's embeddings, each
query's nearest gallery neighbours, and the database are computed
beforehand, as in a retrieval system).
"""

import time

import numpy as np

from ._validate import check_float, check_float_array, check_int
from .datasets.catalog import load_dataset
from .embedding import cosine_neighbours, embed
from .embedding_db import N_CLUSTERS, build_database
from .evaluation import center_gaussian, random_map
from .explain.embedding import N_REFERENCES, default_k, embedding_cam, feature_maps, pair_cam
from .metrics import energy_in_mask, image_maps, pointing_game
from .zoo import pretrained

__all__ = ["QUERY_SEED", "GALLERY_SEED", "mask_iou", "run", "format_table"]

QUERY_SEED = 123
"""Held-out queries: ``shapes(n, seed=123)``, as the bundled models' held-out data."""
GALLERY_SEED = 7
"""The gallery (stand-in for the training set, same distribution): ``shapes(n, seed=7)``."""


def mask_iou(maps, masks, threshold=0.5):
    """IoU of each map thresholded at ``threshold * max`` with the object's mask.

    Parameters
    ----------
    maps : ndarray, shape (N, H, W)
        Image-sized maps.
    masks : ndarray of bool, shape (N, H, W)
    threshold : float in (0, 1]

    Returns
    -------
    ious : ndarray, shape (N,)
        A map whose maximum is <= 0 selects nothing: IoU 0.
    mean : float
    """
    check_float_array(maps, "maps", ndim=3)
    threshold = check_float(threshold, "threshold", low=0.0, high=1.0, low_inclusive=False)
    if not isinstance(masks, np.ndarray) or masks.dtype != bool or masks.shape != maps.shape:
        raise ValueError(f"masks must be a boolean array of the maps' shape {maps.shape}, got "
                         f"{getattr(masks, 'dtype', type(masks).__name__)} {getattr(masks, 'shape', '')}")
    top = maps.reshape(len(maps), -1).max(axis=1)
    sel = (maps >= threshold * top[:, None, None]) & (top > 0)[:, None, None]
    inter = (sel & masks).sum(axis=(1, 2))
    union = (sel | masks).sum(axis=(1, 2))
    ious = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return ious, float(ious.mean())


def _timed(fn, repeats=1):
    """``fn()`` and its fastest wall-clock time over ``repeats`` runs (the least disturbed by other processes)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def run(n_queries=100, n_gallery=500, n_references=N_REFERENCES, k=None, n_clusters=N_CLUSTERS, threshold=0.5,
        model=None, seed=0, repeats=3):
    """Score every variant of the paper on fresh held-out shapes.

    Parameters
    ----------
    n_queries : int
        Held-out images explained (``shapes(n_queries, seed=QUERY_SEED)``).
    n_gallery : int
        Gallery images (``shapes(n_gallery, seed=GALLERY_SEED)``): the
        references and the database's training set.
    n_references, k, n_clusters
        As the paper: 50 references, top-k channels (default K // 4), 50 clusters.
    threshold : float
        Of :func:`mask_iou`.
    model : Sequential, optional
        Default: ``pretrained("shapes-embed")``.
    seed : int
        Seeds k-means++ and the random baseline.
    repeats : int
        Each method is timed this many times; the fastest run is reported.

    Returns
    -------
    dict
        ``"rows"``: list of dicts ``{"method", "base", "energy", "pointing", "iou", "ms_per_image",
        "backward"}``; ``"settings"``; ``"maps"``: method label -> (N, h, w) maps;
        ``"queries"``: the Dataset.
    """
    n_queries = check_int(n_queries, "n_queries", minimum=1)
    n_gallery = check_int(n_gallery, "n_gallery", minimum=2)
    model = pretrained("shapes-embed") if model is None else model
    queries = load_dataset("shapes", n_queries, seed=QUERY_SEED)
    gallery = load_dataset("shapes", n_gallery, seed=GALLERY_SEED)
    x, masks = queries.images, queries.masks
    keys = embed(model, gallery.images)
    num_channels = feature_maps(model, x[:1])[1].shape[1]
    k = default_k(num_channels) if k is None else check_int(k, "k", minimum=1)

    # The queries' retrieval results, found before the clock starts: a pair method
    # explains a pair it is given (one forward pass and M backward passes).
    ranked = keys[cosine_neighbours(embed(model, x), keys, n_references)]  # (N, n_references, D)

    def neighbours(m):
        return ranked[:, :m]

    methods = []
    for base in ("grad-cam", "grad-cam++"):
        methods += [
            ("one pair (top-1 neighbour)", base, True,
             lambda b=base: pair_cam(model, x, neighbours(1)[:, 0], base=b)),
            (f"{n_references} pairs averaged", base, True,
             lambda b=base: embedding_cam(model, x, neighbours(n_references), base=b)),
            (f"{n_references} pairs + top-{k}", base, True,
             lambda b=base: embedding_cam(model, x, neighbours(n_references), base=b, k=k)),
        ]
    databases, build_seconds = {}, {}
    for base in ("grad-cam", "grad-cam++"):
        databases[base], build_seconds[base] = _timed(
            lambda b=base: build_database(model, gallery.images, n_clusters, n_references, k, b, rng=seed))
        db = databases[base]
        methods += [
            (f"database: cluster, top-{k}", base, False, lambda db=db: db.explain(model, x, "cluster")),
            ("database: cluster, all channels", base, False, lambda db=db: db.explain(model, x, "cluster", k=False)),
            (f"database: nearest image, top-{k}", base, False, lambda db=db: db.explain(model, x, "nearest")),
        ]
    methods += [
        ("random (baseline)", "-", False, lambda: random_map(model, x, seed=seed)),
        ("centre Gaussian (baseline)", "-", False, lambda: center_gaussian(model, x)),
    ]
    rows, all_maps = [], {}
    for label, base, backward, fn in methods:
        maps, seconds = _timed(fn, repeats)
        up = image_maps(maps, x.shape[2:])
        all_maps[f"{label} [{base}]"] = maps
        rows.append({
            "method": label, "base": base, "backward": backward,
            "energy": energy_in_mask(up, masks)[1],
            "pointing": pointing_game(up, masks)[1],
            "iou": mask_iou(up, masks, threshold)[1],
            "ms_per_image": 1000.0 * seconds / n_queries,
        })
    settings = {"n_queries": n_queries, "n_gallery": n_gallery, "n_references": n_references, "k": k,
                "K": num_channels, "n_clusters": n_clusters, "threshold": threshold, "seed": seed,
                "database_build_seconds": build_seconds}
    return {"rows": rows, "settings": settings, "maps": all_maps, "queries": queries}


def format_table(result):
    """The study as a Markdown table (one row per method and base)."""
    lines = [
        "| method | base | backward at test time | energy in mask ↑ | pointing game ↑ | IoU (map ≥ "
        f"{result['settings']['threshold']:g}·max) ↑ | ms / image ↓ |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['base']} | {'yes' if r['backward'] else 'no'} | {r['energy']:.3f} | "
                     f"{r['pointing']:.2f} | {r['iou']:.3f} | {r['ms_per_image']:.2f} |")
    return "\n".join(lines)
