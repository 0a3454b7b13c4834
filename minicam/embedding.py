"""Training an embedding network with a triplet loss, and measuring its retrieval.

An embedding network (:func:`minicam.zoo.embed_net`) maps an image to a point
on the unit sphere; images of the same identity should land close together.
It has no class scores: labels are used only to form triplets (anchor,
positive of the same label, negative of another label), never as outputs.

- :func:`random_triplets`, :func:`semi_hard_triplets`: which triplets of a
  batch are trained on (FaceNet, Schroff et al. 2015, Sec. 3.2);
- :func:`batch_triplet_loss`: :func:`minicam.losses.triplet_loss` on index
  triplets of one batch of embeddings, its gradient gathered per embedding;
- :func:`fit_embedding`: the minibatch loop (forward -> triplets -> loss ->
  backward -> step), like :func:`minicam.train.fit`;
- :func:`embed`, :func:`recall_at_k`: embeddings of a data set, and
  retrieval quality (Recall@k: the share of queries with an image of their
  own label among their k nearest neighbours).
"""

import sys
import time

import numpy as np

from ._validate import as_generator, check_float, check_float_array, check_int
from .losses import triplet_loss

__all__ = [
    "MINING",
    "random_triplets",
    "semi_hard_triplets",
    "batch_triplet_loss",
    "fit_embedding",
    "embed",
    "cosine_neighbours",
    "recall_at_k",
]

MINING = ("random", "semi-hard")


def _check_labels(labels, n=None, name="labels"):
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        got = f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise TypeError(f"{name} must be a 1-D ndarray of int labels, got {got}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} must hold one label per embedding ({n}), got {labels.shape[0]}")
    return labels


def random_triplets(labels, rng):
    """One triplet per anchor: a random positive and a random negative from the batch.

    Parameters
    ----------
    labels : ndarray of int, shape (B,)
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (T, 3)
        Rows ``(anchor, positive, negative)`` of batch indices. Anchors whose
        label appears once in the batch (no positive), or a batch of one
        label (no negative), give no triplet: T may be 0.
    """
    labels = _check_labels(labels)
    gen = as_generator(rng)
    rows = []
    for a, la in enumerate(labels):
        pos = np.flatnonzero((labels == la) & (np.arange(len(labels)) != a))
        neg = np.flatnonzero(labels != la)
        if len(pos) and len(neg):
            rows.append((a, pos[gen.integers(len(pos))], neg[gen.integers(len(neg))]))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def semi_hard_triplets(embeddings, labels, margin=0.2):
    """Every anchor-positive pair of the batch with its semi-hard negative (FaceNet, Sec. 3.2).

    Parameters
    ----------
    embeddings : ndarray, shape (B, D)
        The batch's current embeddings (L2-normalised).
    labels : ndarray of int, shape (B,)
    margin : float >= 0
        Not used to choose: kept for the signature of a sampler.

    Returns
    -------
    ndarray of int, shape (T, 3)
        ``(anchor, positive, negative)`` rows: all pairs ``a != p`` of one
        label, each with the negative ``n`` of smallest ``d(a, n)`` among
        those with ``d(a, n) > d(a, p)`` -- farther than the positive, so not
        the hardest (which collapses training early, as the paper notes), but
        the nearest of those, inside the margin when one is. When no negative
        is farther than the positive, the farthest negative is taken (the
        fallback of TensorFlow Addons' ``triplet_semihard_loss``). ``d`` is
        the squared Euclidean distance.
    """
    check_float_array(embeddings, "embeddings", ndim=2)
    labels = _check_labels(labels, embeddings.shape[0])
    check_float(margin, "margin", low=0.0)
    sq = (embeddings**2).sum(axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T, 0.0)  # (B, B)
    same = labels[:, None] == labels[None, :]
    rows = []
    for a in range(len(labels)):
        negatives = np.flatnonzero(~same[a])
        if not len(negatives):
            continue
        d_an = dist[a, negatives]
        for p in np.flatnonzero(same[a]):
            if p == a:
                continue
            farther = d_an > dist[a, p]
            n = negatives[np.argmin(np.where(farther, d_an, np.inf))] if farther.any() else negatives[np.argmax(d_an)]
            rows.append((a, p, n))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def batch_triplet_loss(embeddings, triplets, margin=0.2):
    """Triplet loss of index triplets of one batch, and its gradient per embedding.

    Parameters
    ----------
    embeddings : ndarray, shape (B, D)
    triplets : ndarray of int, shape (T, 3), T >= 1
        Rows ``(anchor, positive, negative)`` into ``embeddings``.
    margin : float >= 0

    Returns
    -------
    loss : float
        :func:`minicam.losses.triplet_loss` of the gathered rows.
    dembeddings : ndarray, shape (B, D)
        An embedding that plays several roles sums their gradients.
    """
    check_float_array(embeddings, "embeddings", ndim=2)
    triplets = np.asarray(triplets)
    if triplets.ndim != 2 or triplets.shape[1] != 3 or triplets.dtype.kind not in "iu":
        raise ValueError(f"triplets must be an int array (T, 3) of (anchor, positive, negative), got {triplets.shape}")
    if triplets.size and (triplets.min() < 0 or triplets.max() >= embeddings.shape[0]):
        raise ValueError(f"triplets must index the {embeddings.shape[0]} embeddings, got index {int(triplets.max())}")
    a, p, n = triplets.T
    loss, grads = triplet_loss(embeddings[a], embeddings[p], embeddings[n], margin)
    dembeddings = np.zeros_like(embeddings)
    for idx, g in zip((a, p, n), grads):
        np.add.at(dembeddings, idx, g)
    return loss, dembeddings


def fit_embedding(model, images, labels, epochs, batch_size, optimizer, rng, *, margin=0.2, mining="semi-hard",
                  lr_schedule=None, verbose=True, file=None):
    """Train ``model`` (ending in an L2 normalisation) with the triplet loss: the minibatch loop.

    Parameters
    ----------
    model : Sequential
        Outputs embeddings (N, D), e.g. :func:`minicam.zoo.embed_net`.
    images : ndarray, shape (N, C, H, W)
    labels : ndarray of int, shape (N,)
        Identities: used to form triplets only.
    epochs, batch_size : int
        ``batch_size`` >= 2; with few labels, each batch holds several
        images of each, so that every anchor has positives.
    optimizer : minicam.optim.Optimizer
    rng : None, int or numpy.random.Generator
        Shuffles (and the random sampler).
    margin : float >= 0
    mining : {"semi-hard", "random"}
        :func:`semi_hard_triplets` or :func:`random_triplets`.
    lr_schedule : callable ``t -> lr``, optional
        As :func:`minicam.train.fit`: ``t`` the epochs done, fractional
        (e.g. :func:`minicam.train.cosine_schedule`).
    verbose, file
        One line per epoch.

    Returns
    -------
    list of dict
        Per epoch: ``loss`` (mean over batches), ``active`` (share of
        triplets with a positive hinge), ``seconds``.
    """
    check_float_array(images, "images", ndim=4)
    labels = _check_labels(labels, images.shape[0])
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    margin = check_float(margin, "margin", low=0.0)
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
    gen = as_generator(rng)
    out = sys.stdout if file is None else file
    n = images.shape[0]
    steps = max(1, n // batch_size)  # drop the last partial batch: it may lack positives
    history = []
    model.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = gen.permutation(n)
        losses, active = [], []
        for step in range(steps):
            if lr_schedule is not None:
                optimizer.lr = check_float(lr_schedule(epoch + step / steps), "lr_schedule(t)", low=0.0,
                                           low_inclusive=False)
            idx = order[step * batch_size : (step + 1) * batch_size]
            emb = model.forward(images[idx])
            y = labels[idx]
            triplets = semi_hard_triplets(emb, y, margin) if mining == "semi-hard" else random_triplets(y, gen)
            if not len(triplets):
                continue
            loss, demb = batch_triplet_loss(emb, triplets, margin)
            a, p, neg = triplets.T
            hinge = ((emb[a] - emb[p]) ** 2).sum(1) - ((emb[a] - emb[neg]) ** 2).sum(1) + margin
            model.backward(demb)
            optimizer.step()
            losses.append(loss)
            active.append(float((hinge > 0).mean()))
        record = {"loss": float(np.mean(losses)) if losses else float("nan"),
                  "active": float(np.mean(active)) if active else 0.0, "seconds": time.perf_counter() - t0}
        history.append(record)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: triplet loss {record['loss']:.4f}, active triplets "
                  f"{100 * record['active']:.1f}% ({mining}), {record['seconds']:.1f} s", file=out, flush=True)
    model.eval()
    return history


def embed(model, images, batch_size=256):
    """Embeddings of ``images`` (N, C, H, W) batch by batch, in the model's mode: ndarray (N, D)."""
    check_float_array(images, "images", ndim=4)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    return np.concatenate([model.forward(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def cosine_neighbours(queries, gallery, k, exclude_self=False):
    """Indices of the ``k`` gallery embeddings most similar (cosine) to each query, best first.

    Parameters
    ----------
    queries : ndarray, shape (N, D)
    gallery : ndarray, shape (M, D)
    k : int, 1 <= k <= M (M - 1 with ``exclude_self``)
    exclude_self : bool
        Queries are the gallery itself (N = M): never return a query as its
        own neighbour (leave-one-out retrieval).

    Returns
    -------
    ndarray of int, shape (N, k)
    """
    check_float_array(queries, "queries", ndim=2)
    check_float_array(gallery, "gallery", ndim=2)
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dimensions, the gallery {gallery.shape[1]}: "
                         f"embeddings of another network?")
    available = gallery.shape[0] - (1 if exclude_self else 0)
    k = check_int(k, "k", minimum=1)
    if k > available:
        raise ValueError(f"k must be at most the {available} gallery embeddings available, got k={k}")
    if exclude_self and queries.shape[0] != gallery.shape[0]:
        raise ValueError(f"exclude_self needs the queries to be the gallery, got {queries.shape[0]} queries "
                         f"and {gallery.shape[0]} gallery embeddings")
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = qn @ gn.T  # (N, M)
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def recall_at_k(embeddings, labels, ks=(1, 2, 4, 8)):
    """Recall@k of leave-one-out retrieval (Song et al. 2016, the metric-learning benchmark's measure).

    Each embedding is a query against all the others; it scores at ``k`` when
    one of its ``k`` nearest neighbours (cosine) has its label.

    Parameters
    ----------
    embeddings : ndarray, shape (N, D)
    labels : ndarray of int, shape (N,)
    ks : sequence of int

    Returns
    -------
    dict
        ``{k: recall}`` for each k, and ``"by_label"``: ``{label: {k: recall}}``.
    """
    check_float_array(embeddings, "embeddings", ndim=2)
    labels = _check_labels(labels, embeddings.shape[0])
    ks = [check_int(k, "ks[i]", minimum=1) for k in ks]
    nn = cosine_neighbours(embeddings, embeddings, max(ks), exclude_self=True)
    hit = labels[nn] == labels[:, None]  # (N, max k)
    result = {k: float(hit[:, :k].any(axis=1).mean()) for k in ks}
    result["by_label"] = {int(c): {k: float(hit[labels == c, :k].any(axis=1).mean()) for k in ks}
                          for c in np.unique(labels)}
    return result
