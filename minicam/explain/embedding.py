"""Grad-CAM for embedding networks (Chen et al. 2020, "Adapting Grad-CAM for Embedding Networks", WACV).

An embedding network has no class score to differentiate; at test time it
sees one image. Grad-CAM still applies to the cosine similarity of a pair
(:func:`minicam.explain.similarity_target`), and the paper's adaptation is
built from that, one step per function:

1. :func:`pair_cam` -- Grad-CAM of ``cos(f(query), reference)``: one pair,
   which shows what makes *this* pair similar;
2. :func:`pair_weights` -- the channel weights of the query paired with each
   of M references (one forward pass, one backward pass per reference,
   stopped at the feature map);
3. :func:`average_weights` -- their mean over the references (the paper
   averages grad-weights over many training examples, 50 by default: what
   a single pair shows and a class of pairs does not cancels out);
4. :func:`top_k` -- keep the k largest averaged weights, zero the others
   (the paper keeps the 50 channels with the largest mean gradient);
5. :func:`cam_from_weights` -- combine given channel weights with an
   image's own feature maps, with a forward pass only: what the weight
   database (:mod:`minicam.embedding_db`) does at test time.

:func:`embedding_cam` chains 2-5. Every gradient here is that of
:func:`similarity_target` through ``model.backward``: no second gradient
path. ``base`` chooses the channel-weight formula applied to each pair:
Grad-CAM's (:func:`grad_cam_weights`) or Grad-CAM++'s
(:func:`grad_cam_plus_plus_weights`).

What differs from the paper: the paper's grad-weights come from the triplet
loss of training triplets (it found that pair losses did worse on CUB);
here, as the issue asks, they come from the similarity of a query to
references (its nearest neighbours in a gallery, in the study), which needs
no labels at test time.
"""

import numpy as np

from .._validate import check_bool, check_float_array, check_int
from ._core import check_input, resolve_layer, untouched
from .cams import combine, grad_cam_plus_plus_weights, grad_cam_weights, weighted_cam
from .postprocess import relu as relu_map
from .targets import evaluate_target, similarity_target

__all__ = [
    "BASES",
    "N_REFERENCES",
    "default_k",
    "pair_cam",
    "pair_weights",
    "average_weights",
    "top_k",
    "cam_from_weights",
    "embedding_cam",
    "feature_maps",
]

N_REFERENCES = 50
"""References averaged over by default (the paper's 50)."""

BASES = {
    "grad-cam": lambda A, dA: grad_cam_weights(dA),
    "grad-cam++": grad_cam_plus_plus_weights,
}
"""Channel-weight formula applied to each pair: ``(A, dA) -> weights (N, K)``."""


def _check_base(base):
    if not isinstance(base, str) or base not in BASES:
        raise ValueError(f"base must be one of {sorted(BASES)}, got {base!r}")
    return BASES[base]


def default_k(num_channels):
    """The number of channels :func:`top_k` keeps by default: a quarter of K, at least 1.

    The paper keeps 50 channels of a much wider layer; a quarter is our
    choice for minicam's K = 64 (16 channels). Pass ``k=`` to choose.
    """
    return max(1, check_int(num_channels, "num_channels", minimum=1) // 4)


def _output_size(shapes):
    out = shapes[-1][1]
    if len(out) != 2:
        raise ValueError(f"an embedding explanation needs a model whose output is embeddings (N, D), "
                         f"this model outputs shape {out}")
    return out[1]


def _check_references(references, n, d):
    """References as (N, M, D): one set shared by every query (M, D), or one per query (N, M, D)."""
    check_float_array(references, "references", ndim=(2, 3))
    if references.shape[-1] != d:
        raise ValueError(f"references must be embeddings of the model's output size D={d}, got shape "
                         f"{references.shape} (embeddings of another network?)")
    if references.ndim == 3 and references.shape[0] != n:
        raise ValueError(f"references of shape (N, M, D) need one set per query (N={n}), got {references.shape}")
    if references.shape[-2] < 1:
        raise ValueError(f"references must hold at least one embedding, got shape {references.shape}")
    if (np.linalg.norm(references, axis=-1) == 0).any():
        raise ValueError("references hold a zero embedding: its cosine similarity is undefined")
    return references if references.ndim == 3 else np.broadcast_to(references, (n,) + references.shape)


def pair_cam(model, x, reference, layer=None, base="grad-cam", relu=True, return_weights=False):
    """Grad-CAM of the similarity of each query to one reference (Chen et al. 2020, Sec. 3: one pair).

    Parameters
    ----------
    model : Sequential
        Outputs embeddings (N, D), e.g. :func:`minicam.zoo.embed_net`.
    x : ndarray, shape (N, C, H, W)
        Queries.
    reference : ndarray, shape (D,) or (N, D)
        The reference embedding(s), e.g. each query's nearest neighbour.
    layer, relu, return_weights
        As :func:`minicam.grad_cam`.
    base : {"grad-cam", "grad-cam++"}

    Returns
    -------
    maps : ndarray, shape (N, h, w)
    weights : ndarray, shape (N, K), with ``return_weights=True``

    Notes
    -----
    ``weighted_cam`` with ``target=similarity_target(reference)``: the
    explained value is :math:`\\cos(f(x), e)`.
    """
    return weighted_cam(_check_base(base), model, x, layer=layer, relu=relu, return_weights=return_weights,
                        target=similarity_target(reference))


def pair_weights(model, x, references, layer=None, base="grad-cam"):
    """Channel weights of each query paired with each of M references.

    Parameters
    ----------
    model : Sequential
        Outputs embeddings (N, D).
    x : ndarray, shape (N, C, H, W)
    references : ndarray, shape (M, D) or (N, M, D)
        Shared by every query, or one set per query.
    layer : str, optional
        Default: the last layer with a 4-D output.
    base : {"grad-cam", "grad-cam++"}

    Returns
    -------
    A : ndarray, shape (N, K, h, w)
        The queries' feature maps.
    weights : ndarray, shape (N, M, K)
        ``weights[n, j]``: the base's channel weights for
        ``cos(f(x_n), references[n, j])``.

    Notes
    -----
    One forward pass; then per reference one backward pass of the
    similarity's gradient, stopped at ``layer`` (the cache of a forward
    serves several backward passes), so the cost is one forward plus M
    backward passes through the layers after ``layer`` only.
    """
    weight_fn = _check_base(base)
    shapes = check_input(model, x, image=True)
    layer = resolve_layer(model, shapes, layer)
    refs = _check_references(references, x.shape[0], _output_size(shapes))
    out = []
    with untouched(model):
        scores = model.forward(x, cache=layer)  # the backward passes stop at layer
        A = model.outputs[layer]
        for j in range(refs.shape[1]):
            _, dscores = evaluate_target(similarity_target(np.ascontiguousarray(refs[:, j])), scores)
            out.append(weight_fn(A, model.backward(dscores, stop_at=layer, param_grads=False)))
    return A, np.stack(out, axis=1)


def average_weights(weights):
    """Mean channel weights over the references (Chen et al. 2020: grad-weights averaged over examples).

    Parameters
    ----------
    weights : ndarray, shape (N, M, K)

    Returns
    -------
    ndarray, shape (N, K)
    """
    check_float_array(weights, "weights", ndim=3)
    return weights.mean(axis=1)


def top_k(weights, k):
    """Keep each row's ``k`` largest weights, set the others to 0 (Chen et al. 2020: top channels).

    Parameters
    ----------
    weights : ndarray, shape (N, K)
    k : int, 1 <= k <= K
        :func:`default_k` is a quarter of K.

    Returns
    -------
    ndarray, shape (N, K)
        Ties at the k-th value are broken by channel order (the first kept).
    """
    check_float_array(weights, "weights", ndim=2)
    k = check_int(k, "k", minimum=1)
    if k > weights.shape[1]:
        raise ValueError(f"k must be at most the {weights.shape[1]} channels of the layer, got k={k}")
    keep = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    out = np.zeros_like(weights)
    rows = np.arange(weights.shape[0])[:, None]
    out[rows, keep] = weights[rows, keep]
    return out


def feature_maps(model, x, layer=None):
    """One forward pass: the embeddings (N, D) and the feature maps A (N, K, h, w) of ``layer``.

    The model is left as found (:func:`minicam.explain._core.untouched`); no backward pass.
    """
    shapes = check_input(model, x, image=True)
    layer = resolve_layer(model, shapes, layer)
    _output_size(shapes)
    with untouched(model):
        emb = model.forward(x, cache=False)
        A = model.outputs[layer]
    return emb, A


def cam_from_weights(A, weights, relu=True):
    """``ReLU(sum_k weights[n, k] A[n, k])``: given channel weights on an image's own maps.

    Parameters
    ----------
    A : ndarray, shape (N, K, h, w)
        From :func:`feature_maps` (a forward pass only).
    weights : ndarray, shape (N, K)
        E.g. averaged, top-k, or borrowed from a weight database.
    relu : bool

    Returns
    -------
    ndarray, shape (N, h, w)
    """
    check_float_array(A, "A", ndim=4)
    check_float_array(weights, "weights", ndim=2)
    if weights.shape != A.shape[:2]:
        raise ValueError(f"weights must be (N, K) = {A.shape[:2]} for feature maps {A.shape}, got {weights.shape}")
    maps = combine(weights, A)
    return relu_map(maps) if check_bool(relu, "relu") else maps


def embedding_cam(model, x, references, layer=None, base="grad-cam", k=None, relu=True, return_weights=False):
    """Grad-CAM of an embedding averaged over M references, optionally on its top-k channels.

    Chen et al. 2020, Sec. 3: per-pair channel weights (:func:`pair_weights`),
    their mean (:func:`average_weights`), the k largest kept (:func:`top_k`),
    combined with the query's feature maps and rectified.

    Parameters
    ----------
    model, x, layer, base
        As :func:`pair_weights`.
    references : ndarray, shape (M, D) or (N, M, D)
        E.g. the queries' :data:`N_REFERENCES` nearest neighbours in a gallery.
    k : int, optional
        Keep the k largest averaged weights (``None``: all channels).
    relu, return_weights : bool

    Returns
    -------
    maps : ndarray, shape (N, h, w)
    weights : ndarray, shape (N, K), with ``return_weights=True``
    """
    A, w = pair_weights(model, x, references, layer, base)
    w = average_weights(w)
    if k is not None:
        w = top_k(w, k)
    maps = cam_from_weights(A, w, relu)
    return (maps, w) if check_bool(return_weights, "return_weights") else maps
