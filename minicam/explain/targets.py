"""What an explanation explains: targets, i.e. a scalar per sample and its gradient.

A *target* is a callable ``target(scores) -> (value, dscores)``:

- ``scores``: the model's last output for a batch, e.g. (N, M) logits or
  (N, D) embeddings;
- ``value``: ndarray (N,), the explained quantity of each sample;
- ``dscores``: ndarray of ``scores``' shape, ``d value[n] / d scores[n, :]``
  in row ``n`` (row ``n`` depends only on sample ``n``).

Every method builds its upstream gradient from a target: the usual
``class_idx`` + ``score`` arguments make a :class:`ClassScore`, and any other
callable (:func:`similarity_target`, or one of your own) explains whatever it
defines -- one forward and one backward pass, whatever the target.
"""

import numpy as np

from .._validate import check_float_array, check_float_dtype
from ..losses import log_softmax

__all__ = [
    "SCORES",
    "ClassScore",
    "CosineSimilarity",
    "class_target",
    "similarity_target",
    "evaluate_target",
    "evaluate_stacked",
]

SCORES = ("logit", "softmax", "log_softmax")


class ClassScore:
    """Score of class ``class_idx[n]`` for sample ``n``, as a logit, probability or log-probability.

    Parameters
    ----------
    class_idx : int, or ndarray of int, shape (N,)
        One class for every sample of any batch, or one per sample.
    score : {"logit", "softmax", "log_softmax"}

    Notes
    -----
    With ``s = scores[n]``, ``c = class_idx[n]``, ``p = softmax(s)`` and
    ``e_c`` the one-hot row:

    =========== ============ ==================================================
    score       value        dscores (row n)
    =========== ============ ==================================================
    logit       ``s_c``      ``e_c``
    softmax     ``p_c``      ``p_c (e_c - p)`` (row c of the softmax Jacobian)
    log_softmax ``log p_c``  ``e_c - p``
    =========== ============ ==================================================
    """

    def __init__(self, class_idx, score="logit"):
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.class_idx = int(class_idx) if np.ndim(class_idx) == 0 else np.asarray(class_idx, dtype=np.int64)
        self.score = score

    def __call__(self, scores):
        if scores.ndim != 2:
            raise ValueError(f"a class target needs the model's output to be 2-D (N, M), got shape {scores.shape}")
        n, m = scores.shape
        idx = np.broadcast_to(np.asarray(self.class_idx, dtype=np.int64), (n,)) if np.ndim(self.class_idx) == 0 else self.class_idx
        if idx.shape != (n,):
            raise ValueError(f"class target holds {idx.shape[0]} classes, the batch has {n} samples")
        if n and (idx.min() < 0 or idx.max() >= m):
            raise ValueError(f"class_idx must be in [0, {m}) for a model with {m} outputs, got {np.asarray(self.class_idx).tolist()}")
        rows = np.arange(n)
        onehot = np.zeros_like(scores)
        onehot[rows, idx] = 1.0
        if self.score == "logit":
            return scores[rows, idx], onehot
        logp = log_softmax(scores)
        p = np.exp(logp)
        if self.score == "log_softmax":
            return logp[rows, idx], onehot - p
        pc = p[rows, idx]
        return pc, pc[:, None] * (onehot - p)

    def __repr__(self):
        return f"ClassScore(class_idx={np.asarray(self.class_idx).tolist()}, score={self.score!r})"


def class_target(class_idx, score="logit"):
    """Target for class scores (what ``class_idx=..., score=...`` means in every method).

    Parameters
    ----------
    class_idx : int or sequence of ints
        One class for all samples, or one per sample. (``None``, the predicted
        class, is resolved by the methods themselves on the clean input.)
    score : {"logit", "softmax", "log_softmax"}

    Returns
    -------
    ClassScore
    """
    if class_idx is None:
        raise ValueError(
            "class_target needs explicit classes (class_idx: an int or a sequence of ints), got class_idx=None; "
            "pass class_idx=None to a method for the predicted class"
        )
    if isinstance(class_idx, (bool, np.bool_)):
        raise TypeError(f"class_idx must be an int or a sequence of ints, got {class_idx!r}")
    arr = np.asarray(class_idx)
    if arr.ndim > 1 or arr.dtype.kind not in "iu":
        raise TypeError(f"class_idx must be an int or a 1-D sequence of ints, got {class_idx!r}")
    if (arr < 0).any():
        raise ValueError(f"class_idx must be >= 0, got {class_idx!r}")
    return ClassScore(arr if arr.ndim else int(arr), score)


class CosineSimilarity:
    """Cosine similarity between the model's output (an embedding) and a reference embedding.

    Parameters
    ----------
    reference : ndarray, shape (D,) or (N, D)
        One reference for every sample, or one per sample; nonzero.

    Notes
    -----
    With ``f = scores[n]`` and ``e`` the reference,

    .. math:: \\cos(f, e) = \\frac{f \\cdot e}{\\|f\\|\\,\\|e\\|}, \\qquad
              \\frac{\\partial \\cos}{\\partial f} = \\frac{e}{\\|f\\|\\,\\|e\\|}
              - \\cos(f, e)\\, \\frac{f}{\\|f\\|^2}

    The gradient is orthogonal to ``f`` (scaling an embedding does not change
    its direction), and zero when ``f`` is parallel to ``e``.
    """

    def __init__(self, reference):
        check_float_array(reference, "reference", ndim=(1, 2))
        check_float_dtype(reference.dtype, "reference's dtype")
        if reference.size == 0:
            raise ValueError(f"reference must hold at least one embedding of at least one value, got shape {reference.shape}")
        norms = np.linalg.norm(np.atleast_2d(reference), axis=1)
        if (norms == 0).any():
            raise ValueError(
                f"reference must be a nonzero embedding: the cosine similarity to a zero vector is undefined, "
                f"got an all-zero embedding (row {int(np.argmin(norms))} of shape {reference.shape})"
            )
        self.reference = reference.copy()

    def __call__(self, scores):
        d = self.reference.shape[-1]
        if scores.ndim != 2 or scores.shape[1] != d:
            raise ValueError(f"similarity target: the model's output must be embeddings (N, {d}), got shape {scores.shape}")
        if self.reference.ndim == 2 and self.reference.shape[0] != scores.shape[0]:
            raise ValueError(
                f"similarity target: reference holds {self.reference.shape[0]} embeddings, the batch has {scores.shape[0]}"
            )
        e = np.broadcast_to(self.reference.astype(scores.dtype, copy=False), scores.shape)
        nf = np.linalg.norm(scores, axis=1)
        if (nf == 0).any():
            raise ValueError(f"similarity target: the embedding of sample {int(np.argmin(nf))} is zero, its direction undefined")
        ne = np.linalg.norm(e, axis=1)
        cos = (scores * e).sum(axis=1) / (nf * ne)
        dscores = e / (nf * ne)[:, None] - (cos / nf**2)[:, None] * scores
        return cos, dscores

    def __repr__(self):
        return f"CosineSimilarity(reference shape {self.reference.shape})"


def similarity_target(reference):
    """Target for Grad-CAM (or any method) on an embedding network: ``cos(f(x), reference)``.

    As in "Grad-CAM for embedding networks" (Stylianou et al., "Visualizing
    deep similarity networks", WACV 2019; Chen et al. 2020, "Adapting
    Grad-CAM for embedding networks"): the explained quantity is the
    similarity between the query's embedding and a reference image's
    embedding, instead of a class score.

    Parameters
    ----------
    reference : ndarray, shape (D,) or (N, D)
        Reference embedding(s), e.g. ``model.forward(x_ref)[0]``.

    Returns
    -------
    CosineSimilarity
        Pass it as ``target=`` to a method (with ``class_idx=None``).

    Examples
    --------
    >>> e_ref = model.forward(x_ref)[0]                                   # doctest: +SKIP
    >>> maps = mc.grad_cam(model, x_query, target=mc.similarity_target(e_ref))  # doctest: +SKIP
    """
    return CosineSimilarity(reference)


def evaluate_target(target, scores):
    """Call ``target(scores)`` and check what it returns.

    Returns
    -------
    value : ndarray, shape (N,)
    dscores : ndarray, shape of ``scores``
    """
    result = target(scores)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"target must return a pair (value, dscores), got {type(result).__name__}")
    value, dscores = result
    n = scores.shape[0]
    value = np.asarray(value)
    if value.shape != (n,) or not np.issubdtype(value.dtype, np.floating):
        raise ValueError(f"target must return value as a float array of shape ({n},), got {value.dtype} {value.shape}")
    if not isinstance(dscores, np.ndarray) or dscores.shape != scores.shape:
        raise ValueError(
            f"target must return dscores of the model output's shape {scores.shape}, got "
            f"{getattr(dscores, 'shape', type(dscores).__name__)}"
        )
    check_float_array(dscores, "dscores returned by target")
    if not np.all(np.isfinite(value)):
        raise ValueError("target returned a NaN or infinite value")
    return value, dscores


def _for_copies(target, copies, n):
    """The target that treats ``copies`` stacked copies of an ``n``-sample batch as ``target`` treats one, or None.

    Only the two built-in targets are rewritten (their exact types: a subclass
    may compute something else); their per-sample data (classes, reference
    embeddings) is repeated once per copy. ``None`` also when that data does
    not fit ``n`` samples, so that the per-copy call raises its own error.
    """
    if type(target) is ClassScore:
        if np.ndim(target.class_idx) == 0:
            return target
        return ClassScore(np.tile(target.class_idx, copies), target.score) if target.class_idx.shape == (n,) else None
    if type(target) is CosineSimilarity:
        ref = target.reference
        if ref.ndim == 1:
            return target
        return CosineSimilarity(np.tile(ref, (copies, 1))) if ref.shape[0] == n else None
    return None


def evaluate_stacked(target, scores):
    """The explained value of every sample of ``P`` perturbed copies of a batch, at once.

    Parameters
    ----------
    target : callable
        A target for batches of ``N`` samples (as :func:`evaluate_target`).
    scores : ndarray, shape (P, N, ...)
        The model's output for ``P`` copies of the batch run as one pass,
        copy-major (row ``p * N + n`` of the pass is sample ``n`` of copy ``p``).

    Returns
    -------
    ndarray, shape (P, N)
        ``evaluate_target(target, scores[p])[0]`` in row ``p``.

    Notes
    -----
    Score-CAM and occlusion score 64 perturbed images per pass; one call per
    copy cost about as much as a convolution of the network on one image. A
    :class:`ClassScore` or :class:`CosineSimilarity` is evaluated once on all
    ``P * N`` rows, with its classes or reference embeddings repeated for
    every copy (the same formula row by row, so the same numbers); any other
    callable is defined for ``N`` rows, and is called once per copy.
    """
    p, n = scores.shape[:2]
    whole = _for_copies(target, p, n)
    if whole is None:
        return np.stack([evaluate_target(target, scores[i])[0] for i in range(p)])
    return evaluate_target(whole, scores.reshape(p * n, *scores.shape[2:]))[0].reshape(p, n)
