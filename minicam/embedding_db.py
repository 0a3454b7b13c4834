"""The weight database: explaining an embedding without a backward pass (Chen et al. 2020, weight transfer).

At test time an embedding network sees one image: no pair, no label, and
(in the paper's setting) no time for backpropagation. The paper's answer:

1. embed the training images and cluster the embeddings (:func:`kmeans`,
   k-means++ seeding, 50 clusters in the paper);
2. for each training image, average the Grad-CAM channel weights of its
   pairs (:func:`minicam.explain.embedding.pair_weights`; here with its
   ``n_references`` nearest training neighbours);
3. store per cluster the mean of its members' weights and the indices of
   the top-k channels (:func:`build_database`);
4. at test time, one forward pass gives the embedding and the feature maps;
   the image borrows the weights of its cluster (or of its nearest training
   image) and combines them with its own maps (:meth:`WeightDatabase.explain`).

The database saves to one ``.npz`` and loads with ``allow_pickle=False``,
every array checked (:func:`save_database`, :func:`load_database`).
"""

import os
import zipfile

import numpy as np

from ._validate import PARSE_ERRORS, as_generator, check_float_array, check_int, source_name
from .embedding import cosine_neighbours, embed
from .explain._core import check_input, resolve_layer, untouched
from .explain.embedding import BASES, N_REFERENCES, average_weights, cam_from_weights, default_k, feature_maps
from .explain.embedding import pair_weights, top_k

__all__ = [
    "N_CLUSTERS",
    "VARIANTS",
    "kmeans",
    "WeightDatabase",
    "build_database",
    "save_database",
    "load_database",
    "MAX_DATABASE_BYTES",
]

N_CLUSTERS = 50
"""Clusters of the training embeddings (the paper's 50)."""
VARIANTS = ("cluster", "nearest")
"""Whose weights a test image borrows: its cluster's mean, or its nearest training image's."""
MAX_DATABASE_BYTES = 256 * 2**20
"""Largest uncompressed database file :func:`load_database` reads (256 MiB)."""


# -- k-means (Lloyd 1982; k-means++ seeding, Arthur & Vassilvitskii 2007) ---------------


def _sq_dist(X, C):
    """Squared Euclidean distances (n, k) between rows of X (n, D) and C (k, D)."""
    return np.maximum((X**2).sum(1)[:, None] - 2.0 * X @ C.T + (C**2).sum(1)[None, :], 0.0)


def kmeans(X, n_clusters, rng=0, max_iter=100):
    """k-means clustering with k-means++ seeding, in NumPy.

    Parameters
    ----------
    X : ndarray, shape (n, D)
    n_clusters : int, 1 <= n_clusters <= n
    rng : None, int or numpy.random.Generator
        Seeds the k-means++ draws (same seed, same clusters).
    max_iter : int
        Lloyd iterations at most; stops earlier when no assignment changes.

    Returns
    -------
    centres : ndarray, shape (n_clusters, D)
    assignment : ndarray of int, shape (n,)
        Each point's nearest centre (ties: the lowest index).
    inertia : float
        Sum of squared distances of the points to their centres.

    Notes
    -----
    k-means++: the first centre is a uniformly drawn point, each next one a
    point drawn with probability proportional to its squared distance to
    the nearest centre chosen so far. Lloyd: assign each point to its
    nearest centre, move each centre to its points' mean. A cluster left
    empty takes the point farthest from its own centre.
    """
    check_float_array(X, "X", ndim=2)
    n = X.shape[0]
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    if n_clusters > n:
        raise ValueError(f"n_clusters must be at most the number of points ({n}), got n_clusters={n_clusters}")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    gen = as_generator(rng)
    centres = [X[gen.integers(n)]]
    closest = _sq_dist(X, centres[0][None])[:, 0]
    for _ in range(1, n_clusters):
        total = closest.sum()
        # All remaining points sit on a centre (duplicates): any point will do.
        i = gen.choice(n, p=closest / total) if total > 0 else gen.integers(n)
        centres.append(X[i])
        closest = np.minimum(closest, _sq_dist(X, X[i][None])[:, 0])
    centres = np.array(centres)
    assignment = None
    for _ in range(max_iter):
        d = _sq_dist(X, centres)
        new = d.argmin(axis=1)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        for c in range(n_clusters):
            members = assignment == c
            if members.any():
                centres[c] = X[members].mean(axis=0)
            else:
                far = int(d[np.arange(n), assignment].argmax())
                centres[c] = X[far]
                assignment[far] = c
    d = _sq_dist(X, centres)
    assignment = d.argmin(axis=1)
    return centres, assignment, float(d[np.arange(n), assignment].sum())


# -- the database ---------------------------------------------------------------------


class WeightDatabase:
    """Stored channel weights of training images, by cluster and by image.

    Parameters
    ----------
    centres : ndarray, shape (C, D)
        k-means centres of the training embeddings.
    cluster_weights : ndarray, shape (C, K)
        Mean averaged-pair channel weights of each cluster's members.
    top_channels : ndarray of int, shape (C, k)
        Each cluster's k channels of largest mean weight.
    keys : ndarray, shape (n, D)
        The training embeddings (for the nearest-neighbour variant).
    key_weights : ndarray, shape (n, K)
        Each training image's averaged-pair channel weights.
    layer : str
        Name of the feature-map layer the weights belong to.
    base : {"grad-cam", "grad-cam++"}
    """

    def __init__(self, centres, cluster_weights, top_channels, keys, key_weights, layer, base):
        check_float_array(centres, "centres", ndim=2)
        check_float_array(cluster_weights, "cluster_weights", ndim=2)
        check_float_array(keys, "keys", ndim=2)
        check_float_array(key_weights, "key_weights", ndim=2)
        c, d = centres.shape
        k_all = cluster_weights.shape[1]
        if c < 1 or d < 1 or k_all < 1 or keys.shape[0] < 1:
            raise ValueError(f"a weight database needs at least one cluster, dimension, channel and key, got centres "
                             f"{centres.shape}, cluster_weights {cluster_weights.shape}, keys {keys.shape}")
        if cluster_weights.shape[0] != c:
            raise ValueError(f"cluster_weights must have one row per centre ({c}), got {cluster_weights.shape}")
        if keys.shape[1] != d or key_weights.shape != (keys.shape[0], k_all):
            raise ValueError(f"keys must be (n, {d}) and key_weights (n, {k_all}), got {keys.shape} and "
                             f"{key_weights.shape}")
        top_channels = np.asarray(top_channels)
        if top_channels.ndim != 2 or top_channels.shape[0] != c or top_channels.dtype.kind not in "iu":
            raise ValueError(f"top_channels must be ints (C={c}, k), got {top_channels.dtype} {top_channels.shape}")
        if top_channels.size and (top_channels.min() < 0 or top_channels.max() >= k_all):
            raise ValueError(f"top_channels must index the {k_all} channels, got {int(top_channels.max())}")
        if not 1 <= top_channels.shape[1] <= k_all:
            raise ValueError(f"top_channels must keep between 1 and {k_all} channels, got {top_channels.shape[1]}")
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer must be a layer name, got {layer!r}")
        if base not in BASES:
            raise ValueError(f"base must be one of {sorted(BASES)}, got {base!r}")
        self.centres, self.cluster_weights, self.top_channels = centres, cluster_weights, top_channels
        self.keys, self.key_weights, self.layer, self.base = keys, key_weights, layer, base

    @property
    def k(self):
        """Number of channels kept per cluster."""
        return self.top_channels.shape[1]

    def __repr__(self):
        return (f"WeightDatabase({self.centres.shape[0]} clusters of {self.keys.shape[0]} embeddings "
                f"(D={self.centres.shape[1]}), K={self.cluster_weights.shape[1]} channels of {self.layer!r}, "
                f"top k={self.k}, base={self.base!r})")

    def _check_embeddings(self, embeddings):
        check_float_array(embeddings, "embeddings", ndim=2)
        if embeddings.shape[1] != self.centres.shape[1]:
            raise ValueError(f"embeddings must have the database's size D={self.centres.shape[1]}, got shape "
                             f"{embeddings.shape} (another network's embeddings?)")
        return embeddings

    def cluster_of(self, embeddings):
        """Index (N,) of the nearest centre (squared Euclidean) of each embedding (N, D)."""
        return _sq_dist(self._check_embeddings(embeddings), self.centres).argmin(axis=1)

    def weights_for(self, embeddings, variant="cluster", k=True):
        """The channel weights a test embedding borrows.

        Parameters
        ----------
        embeddings : ndarray, shape (N, D)
        variant : {"cluster", "nearest"}
            Its cluster's mean weights (restricted to the cluster's top-k
            channels when ``k``), or its nearest (cosine) training image's
            weights (its own top-k when ``k``).
        k : bool
            Keep only the top-k channels (the database's k).

        Returns
        -------
        ndarray, shape (N, K)
        """
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self._check_embeddings(embeddings)
        if variant == "cluster":
            c = self.cluster_of(embeddings)
            w = self.cluster_weights[c]
            if not k:
                return w.copy()
            out = np.zeros_like(w)
            rows = np.arange(len(c))[:, None]
            out[rows, self.top_channels[c]] = w[rows, self.top_channels[c]]
            return out
        w = self.key_weights[cosine_neighbours(embeddings, self.keys, 1)[:, 0]]
        return top_k(w, self.k) if k else w

    def explain(self, model, x, variant="cluster", k=True, relu=True):
        """Maps for ``x`` from one forward pass and stored weights: no backward pass.

        Parameters
        ----------
        model : Sequential
            The network the database was built from.
        x : ndarray, shape (N, C, H, W)
        variant, k
            As :meth:`weights_for`.
        relu : bool

        Returns
        -------
        ndarray, shape (N, h, w)
        """
        emb, A = feature_maps(model, x, self.layer)
        if A.shape[1] != self.cluster_weights.shape[1]:
            raise ValueError(f"layer {self.layer!r} has {A.shape[1]} channels, the database "
                             f"{self.cluster_weights.shape[1]}: built from another network?")
        return cam_from_weights(A, self.weights_for(emb, variant, k), relu)


def build_database(model, images, n_clusters=N_CLUSTERS, n_references=N_REFERENCES, k=None, base="grad-cam",
                   layer=None, rng=0, batch_size=250):
    """Build a :class:`WeightDatabase` from training images (Chen et al. 2020, weight transfer).

    Parameters
    ----------
    model : Sequential
        Outputs embeddings (N, D).
    images : ndarray, shape (n, C, H, W)
        The training images (or any gallery of the same distribution).
    n_clusters : int, <= n
    n_references : int, <= n - 1
        Each image's weights average its pairs with its ``n_references``
        nearest (cosine) neighbours among the other images.
    k : int, optional
        Top channels kept per cluster; default :func:`default_k` (K // 4).
    base : {"grad-cam", "grad-cam++"}
    layer : str, optional
        Default: the last layer with a 4-D output.
    rng : None, int or numpy.random.Generator
        Seeds k-means++.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    WeightDatabase
    """
    if base not in BASES:
        raise ValueError(f"base must be one of {sorted(BASES)}, got {base!r}")
    shapes = check_input(model, images, image=True)
    layer = resolve_layer(model, shapes, layer)
    n = images.shape[0]
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    if n_clusters > n:
        raise ValueError(f"n_clusters must be at most the number of images ({n}), got n_clusters={n_clusters}")
    n_references = check_int(n_references, "n_references", minimum=1)
    if n_references > n - 1:
        raise ValueError(f"n_references must be at most the {n - 1} other images, got n_references={n_references}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    num_channels = dict(shapes)[layer][1]
    k = default_k(num_channels) if k is None else check_int(k, "k", minimum=1)
    if k > num_channels:
        raise ValueError(f"k must be at most the {num_channels} channels of layer {layer!r}, got k={k}")
    with untouched(model):
        keys = embed(model, images, batch_size)
    neighbours = cosine_neighbours(keys, keys, n_references, exclude_self=True)  # (n, M)
    key_weights = np.concatenate([
        average_weights(pair_weights(model, images[i : i + batch_size], keys[neighbours[i : i + batch_size]],
                                     layer, base)[1])
        for i in range(0, n, batch_size)
    ])
    centres, assignment, _ = kmeans(keys, n_clusters, rng)
    cluster_weights = np.stack([key_weights[assignment == c].mean(axis=0) for c in range(n_clusters)])
    top_channels = np.argsort(-cluster_weights, axis=1, kind="stable")[:, :k]
    return WeightDatabase(centres, cluster_weights, top_channels, keys, key_weights, layer, base)


# -- saving and loading -----------------------------------------------------------------

_FLOAT_KEYS = ("centres", "cluster_weights", "keys", "key_weights")
_KEYS = set(_FLOAT_KEYS) | {"top_channels", "layer", "base", "format"}
_FORMAT = "minicam-weight-database-1"


def save_database(db, path):
    """Save a :class:`WeightDatabase` to one ``.npz`` (plain arrays and strings, no pickle)."""
    if not isinstance(db, WeightDatabase):
        raise TypeError(f"db must be a WeightDatabase, got {type(db).__name__}")
    arrays = {key: getattr(db, key) for key in _FLOAT_KEYS}
    np.savez_compressed(os.fspath(path), **arrays, top_channels=db.top_channels.astype(np.int64),
                        layer=np.array(db.layer), base=np.array(db.base), format=np.array(_FORMAT))


def load_database(path):
    """Load a database saved by :func:`save_database`, refusing anything else with one ValueError naming the file.

    Checked, in order: a zip of at most :data:`MAX_DATABASE_BYTES`
    uncompressed; exactly the expected arrays, read with
    ``allow_pickle=False``; float arrays finite, ``top_channels`` ints,
    strings 0-d; then the shapes agree with each other (:class:`WeightDatabase`).
    """
    where = source_name(path)
    if isinstance(path, (str, os.PathLike)) and not os.path.isfile(path):
        raise FileNotFoundError(f"no weight database at {where}")
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(info.file_size for info in zf.infolist())
        if hasattr(path, "seek"):
            path.seek(0)
        if total > MAX_DATABASE_BYTES:
            raise ValueError(f"{total} bytes uncompressed, more than MAX_DATABASE_BYTES = {MAX_DATABASE_BYTES}")
        with np.load(path, allow_pickle=False) as f:
            found = set(f.files)
            if found != _KEYS:
                raise ValueError(f"arrays: missing {sorted(_KEYS - found)}, unexpected {sorted(found - _KEYS)[:10]}")
            raw = {key: f[key] for key in _KEYS}
        if raw["format"].shape != () or str(raw["format"]) != _FORMAT:
            raise ValueError(f"not a minicam weight database (format {str(raw['format'])[:80]!r})")
        for key in _FLOAT_KEYS:
            if raw[key].dtype.kind != "f" or raw[key].ndim != 2:
                raise ValueError(f"array {key!r} must be a 2-D float array, got {raw[key].dtype} {raw[key].shape}")
            if not np.all(np.isfinite(raw[key])):
                raise ValueError(f"array {key!r} contains NaN or infinity")
        for key in ("layer", "base"):
            if raw[key].shape != () or raw[key].dtype.kind != "U":
                raise ValueError(f"{key!r} must be a 0-d string, got {raw[key].dtype} {raw[key].shape}")
        return WeightDatabase(*(raw[key].astype(np.float64) for key in ("centres", "cluster_weights")),
                              raw["top_channels"], raw["keys"].astype(np.float64),
                              raw["key_weights"].astype(np.float64), str(raw["layer"]), str(raw["base"]))
    except PARSE_ERRORS as err:
        raise ValueError(f"{where} is not a valid weight database: {err}") from err
