"""Training and evaluation loops: ``fit``, ``evaluate``, ``predict``, ``confusion_matrix``.

``fit`` is the classic minibatch loop, written out so that a student can
read it: shuffle, and for each batch ``forward -> softmax cross-entropy ->
backward -> optimizer.step()``. It prints one line per epoch (plain
``print`` with ``flush=True``, which shows as it happens in a terminal and
in a Jupyter notebook alike) and returns the per-epoch history.

Determinism: the only randomness is the shuffling (from ``rng``) and the
model's own (its initial weights, Dropout's masks), so the same seeds give
the same weights on the same machine.
"""

import sys
import time

import numpy as np

from ._validate import as_generator, check_float, check_float_array, check_int
from .losses import check_labels, softmax_cross_entropy

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "predict_scores",
    "confusion_matrix",
    "format_confusion_matrix",
    "cosine_schedule",
]


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _check_model(model):
    if not (hasattr(model, "forward") and hasattr(model, "parameters") and hasattr(model, "output_shapes")):
        raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
    return model


def _model_dtype(model):
    for layer, key in model.parameters():
        return layer.params[key].dtype
    return np.dtype(np.float64)


def _num_classes(model, x_shape, name):
    """Width of the model's output for inputs of ``x_shape`` (checks that they fit)."""
    try:
        out = model.output_shapes((1,) + tuple(x_shape[1:]))[-1][1]
    except ValueError as err:
        raise ValueError(f"{name} of shape {tuple(x_shape)} does not fit the model: {err}") from err
    if len(out) != 2:
        raise ValueError(f"the model must output class scores of shape (N, num_classes), its output has shape {out}")
    return out[1]


def _check_xy(model, X, y, xname="X", yname="y"):
    check_float_array(X, xname, ndim=4)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{yname} must be a numpy.ndarray of int class labels, got {type(y).__name__}")
    if y.ndim != 1:
        raise ValueError(
            f"{yname} must be 1-D, one class label per image, got shape {y.shape}"
            + (" (two-object scenes have two labels per image: train on single-object data)" if y.ndim == 2 else "")
        )
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{xname} and {yname} must have the same length, got {X.shape[0]} images and {y.shape[0]} labels")
    if X.shape[0] == 0:
        raise ValueError(f"{xname} must hold at least one image, got shape {X.shape}")
    num_classes = _num_classes(model, X.shape, xname)
    check_labels(y, X.shape[0], num_classes, name=yname)
    return num_classes


def _unpack(data, name):
    """``(X, y)`` from a ``(X, y)`` pair or a Dataset (``.images``, ``.labels``)."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError(f"{name} must be an (X, y) pair or a minicam Dataset, got {type(data).__name__}")


def _batches(n, batch_size, order=None):
    idx = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield idx[start : start + batch_size]


class _ModeRestored:
    """Put every layer in eval mode for a block, then give each its own mode back."""

    def __init__(self, model, training):
        self.model, self.training = model, training

    def __enter__(self):
        self.saved = [layer.training for _, layer in self.model.named_layers()]
        self.model.train(self.training)

    def __exit__(self, *exc):
        for (_, layer), mode in zip(self.model.named_layers(), self.saved):
            layer.train(mode)
        return False


# ----------------------------------------------------------------------------
# Inference
# ----------------------------------------------------------------------------


def predict_scores(model, X, batch_size=256):
    """Class scores (logits) of every image, in eval mode, batch by batch.

    Parameters
    ----------
    model : minicam.Sequential
    X : ndarray, shape (N, C, H, W), float
        Cast batch by batch to the dtype of the model's parameters.
    batch_size : int, default 256
        Images per forward pass (memory, not results).

    Returns
    -------
    scores : ndarray, shape (N, num_classes)

    Notes
    -----
    The model runs in eval mode (Dropout off, BatchNorm on running
    statistics) and each layer gets its previous mode back afterwards.
    ``model.outputs`` holds the activations of the last batch.
    """
    _check_model(model)
    check_float_array(X, "X", ndim=4)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    num_classes = _num_classes(model, X.shape, "X")
    dtype = _model_dtype(model)
    scores = np.empty((X.shape[0], num_classes), dtype=dtype)
    with _ModeRestored(model, training=False):
        for idx in _batches(X.shape[0], batch_size):
            scores[idx] = model.forward(X[idx[0] : idx[-1] + 1].astype(dtype, copy=False))
    return scores


def predict(model, X, batch_size=256):
    """Predicted class of every image: ``argmax`` of :func:`predict_scores`.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    return np.argmax(predict_scores(model, X, batch_size), axis=1).astype(np.int64)


def evaluate(model, X, y, batch_size=256):
    """Mean softmax cross-entropy and accuracy of ``model`` on ``(X, y)``, in eval mode.

    Parameters
    ----------
    model : minicam.Sequential
    X : ndarray, shape (N, C, H, W), float
    y : ndarray of int, shape (N,)
        Class labels in ``[0, num_classes)``.
    batch_size : int, default 256

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float in [0, 1], "n": N}``.

    Notes
    -----
    Runs like :func:`predict_scores` (eval mode, each layer's mode restored).
    """
    _check_model(model)
    _check_xy(model, X, y)
    scores = predict_scores(model, X, batch_size)
    loss, _ = softmax_cross_entropy(scores.astype(np.float64), y)
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y))
    return {"loss": loss, "accuracy": accuracy, "n": int(X.shape[0])}


def confusion_matrix(y_true, y_pred, num_classes):
    """Count of each (true class, predicted class) pair.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (N,)
    num_classes : int

    Returns
    -------
    ndarray of int64, shape (num_classes, num_classes)
        ``cm[i, j]``: images of class ``i`` predicted as ``j`` (rows are the
        truth, as in scikit-learn); the diagonal holds the correct ones.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    if not isinstance(y_true, np.ndarray):
        raise TypeError(f"y_true must be a numpy.ndarray of int class labels, got {type(y_true).__name__}")
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y_true.shape}")
    check_labels(y_true, y_true.shape[0], num_classes, name="y_true")
    check_labels(y_pred, y_true.shape[0], num_classes, name="y_pred")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def format_confusion_matrix(cm, class_names):
    """The confusion matrix as a text table, rows = true class, columns = predicted.

    Parameters
    ----------
    cm : ndarray of int, shape (M, M)
    class_names : sequence of M str

    Returns
    -------
    str
        The table, with each row's recall (share of that class predicted right).
    """
    cm = np.asarray(cm)
    names = [str(c) for c in class_names]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        raise ValueError(f"cm must have shape ({len(names)}, {len(names)}) to match class_names, got {cm.shape}")
    w = max(max(len(n) for n in names), len(str(int(cm.max(initial=0)))), 4)
    head = "true \\ pred"
    w0 = max(len(head), w)
    lines = [f"{head:<{w0}}  " + "  ".join(f"{n:>{w}}" for n in names) + "  recall"]
    for name, row in zip(names, cm):
        total = row.sum()
        recall = f"{100.0 * row[names.index(name)] / total:6.1f}%" if total else "     -"
        lines.append(f"{name:<{w0}}  " + "  ".join(f"{int(v):>{w}}" for v in row) + f"  {recall}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------


def cosine_schedule(lr, epochs, warmup=0.0):
    """Linear warm-up, then cosine decay: a learning rate for every step, for :func:`fit`.

    Parameters
    ----------
    lr : float
        Peak learning rate.
    epochs : int
        Length of the schedule, in epochs.
    warmup : float, default 0
        Length of the warm-up, in epochs (fractions allowed).

    Returns
    -------
    callable
        ``schedule(t)``, with ``t`` the number of epochs done before the
        step (fractional: ``epoch - 1 + batch / batches_per_epoch``):

        .. math:: \\eta(t) = \\eta \\cdot \\min\\left(1, \\tfrac{1}{10} + \\tfrac{9}{10}\\tfrac{t}{w}\\right)
                  \\cdot \\tfrac{1}{2}\\left(1 + \\cos\\frac{\\pi t}{E}\\right)

        The cosine (Loshchilov & Hutter 2017, without restarts) takes large
        steps while far from a minimum and small ones to settle at the end.
        The warm-up starts at ``lr / 10``: Adam's first steps move every
        weight by about ``lr`` whatever its gradient's size (its moment
        estimates know only one gradient), and in a wide layer with positive
        inputs such steps add up and can switch off every ReLU that follows.
    """
    lr = check_float(lr, "lr", low=0.0, low_inclusive=False)
    epochs = check_int(epochs, "epochs", minimum=1)
    warmup = check_float(warmup, "warmup", low=0.0, high=float(epochs))

    def schedule(t):
        ramp = 1.0 if t >= warmup else 0.1 + 0.9 * t / warmup
        return lr * ramp * 0.5 * (1.0 + np.cos(np.pi * t / epochs))

    return schedule


def fit(model, data, epochs, batch_size, optimizer, rng, *, val_data=None, lr_schedule=None, verbose=True, file=None):
    """Train ``model`` by minibatch gradient descent on the softmax cross-entropy.

    Parameters
    ----------
    model : minicam.Sequential
        Trained in place. Batches are cast to the dtype of its parameters, so
        a model cast with ``model.astype(np.float32)`` trains in float32.
    data : (X, y) pair or Dataset
        ``X`` : ndarray, shape (N, C, H, W), float; ``y`` : ndarray of int,
        shape (N,), labels in ``[0, num_classes)``. A Dataset gives its
        ``images`` and ``labels``.
    epochs : int >= 1
        Passes over the data.
    batch_size : int >= 1
        Images per step; the last batch of an epoch may be smaller.
    optimizer : minicam.optim.Optimizer
        Built on this model, e.g. ``Adam(model, lr=1e-3)``.
    rng : None, int or numpy.random.Generator
        Source of the per-epoch shuffles. ``None`` draws fresh entropy (pass
        a seed to reproduce).
    val_data : (X, y) pair or Dataset, optional
        Evaluated (eval mode) after each epoch: ``val_loss``, ``val_accuracy``.
    lr_schedule : callable, optional
        ``lr_schedule(t) -> float``, set as ``optimizer.lr`` before each
        step; ``t`` is the number of epochs done (fractional:
        ``epoch - 1 + batch / batches_per_epoch``), e.g.
        :func:`cosine_schedule`. The optimizer keeps the last step's rate.
    verbose : bool, default True
        Print one line per epoch.
    file : writable text stream, optional
        Where to print (default: ``sys.stdout`` at the time of the call).

    Returns
    -------
    history : dict of lists, one entry per epoch
        ``"epoch"`` (1-based), ``"loss"`` and ``"accuracy"`` (mean over the
        epoch's batches, weighted by batch size, taken while the weights
        change -- the usual running figure, not a final evaluation),
        ``"lr"`` (the optimizer's learning rate at the epoch's first step),
        ``"elapsed"`` (seconds since the start of ``fit``), and with
        ``val_data`` ``"val_loss"`` and ``"val_accuracy"``.

    Notes
    -----
    Each step is ``scores = model.forward(xb)``;
    ``loss, dscores = softmax_cross_entropy(scores, yb)``;
    ``model.backward(dscores)``; ``optimizer.step()``. The model is in
    training mode during ``fit`` and every layer gets its previous mode back
    at the end.
    """
    _check_model(model)
    X, y = _unpack(data, "data")
    _check_xy(model, X, y)
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if not hasattr(optimizer, "step") or getattr(optimizer, "model", None) is not model:
        raise ValueError(
            "optimizer must be a minicam.optim optimizer built on this model (e.g. Adam(model)), "
            f"got {optimizer!r}"
        )
    gen = as_generator(rng)
    if val_data is not None:
        Xv, yv = _unpack(val_data, "val_data")
        _check_xy(model, Xv, yv, "val_data X", "val_data y")
    if lr_schedule is not None and not callable(lr_schedule):
        raise TypeError(f"lr_schedule must be a function t -> lr (t in epochs), or None, got {lr_schedule!r}")
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True or False, got {verbose!r}")
    out = sys.stdout if file is None else file

    dtype = _model_dtype(model)
    n = X.shape[0]
    history = {"epoch": [], "loss": [], "accuracy": [], "lr": [], "elapsed": []}
    if val_data is not None:
        history.update(val_loss=[], val_accuracy=[])
    t0 = time.perf_counter()
    width = len(str(epochs))
    with _ModeRestored(model, training=True):
        num_batches = -(-n // batch_size)
        for epoch in range(1, epochs + 1):
            total_loss, correct, first_lr = 0.0, 0, None
            for b, idx in enumerate(_batches(n, batch_size, gen.permutation(n))):
                if lr_schedule is not None:
                    t = epoch - 1 + b / num_batches
                    optimizer.lr = check_float(lr_schedule(t), f"lr_schedule({t:g})", low=0.0, low_inclusive=False)
                first_lr = optimizer.lr if first_lr is None else first_lr
                xb = X[idx].astype(dtype, copy=False)  # fancy indexing copies: X is never touched
                yb = y[idx]
                scores = model.forward(xb)
                loss, dscores = softmax_cross_entropy(scores, yb)
                model.backward(dscores)
                optimizer.step()
                total_loss += loss * idx.size
                correct += int(np.sum(np.argmax(scores, axis=1) == yb))
            history["epoch"].append(epoch)
            history["loss"].append(total_loss / n)
            history["accuracy"].append(correct / n)
            history["lr"].append(first_lr)
            line = (
                f"epoch {epoch:>{width}}/{epochs}  lr {first_lr:.2e}  loss {total_loss / n:.4f}  "
                f"accuracy {100.0 * correct / n:6.2f}%"
            )
            if val_data is not None:
                # evaluate switches to eval mode and back to training mode.
                res = evaluate(model, Xv, yv)
                history["val_loss"].append(res["loss"])
                history["val_accuracy"].append(res["accuracy"])
                line += f"  val_loss {res['loss']:.4f}  val_accuracy {100.0 * res['accuracy']:6.2f}%"
            elapsed = time.perf_counter() - t0
            history["elapsed"].append(elapsed)
            if verbose:
                print(f"{line}  {elapsed:6.1f} s", file=out, flush=True)
    return history
