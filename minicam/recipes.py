"""Training recipes: how the bundled models are made and scored, from one seed.

- :func:`train_reference`: generate training data, train a reference
  architecture of :mod:`minicam.zoo` (optionally on the frozen blocks of
  another model) and measure it on held-out data -- the recipe behind
  ``python -m minicam train`` and every entry of :data:`minicam.zoo.PRETRAINED`.
- :func:`train_embedding_reference`: the same for the embedding network
  (``--model embed``), trained with the triplet loss on frozen blocks.
- :func:`evaluate_pretrained`: a bundled model's accuracy and confusion
  matrix on fresh held-out data (``python -m minicam evaluate-model``); for
  an embedding network, leave-one-out Recall@1 and the 1-NN confusion.
"""

import copy
import os
import sys
import time

import numpy as np

from . import embedding, io, train
from ._validate import check_int
from .datasets.catalog import load_dataset
from .explain._core import last_feature_layer
from .model import Sequential
from .optim import Adam
from .zoo import ARCHITECTURES, PRETRAINED, TRAINING_DATA, pretrained

__all__ = ["train_reference", "train_embedding_reference", "evaluate_pretrained", "EMBEDDING_RECIPE"]


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def _feature_index(model, input_shape):
    """Index of the feature map the CAM methods default to (explain's rule: the last 4-D output)."""
    return model.names.index(last_feature_layer(model, model.output_shapes((1,) + tuple(input_shape))))


def _copy_blocks(model, source, upto, where):
    """Copy the parameters and buffers of ``model``'s first ``upto + 1`` layers from ``source``."""
    names = model.names[: upto + 1]
    src = source.state_dict()
    state = model.state_dict()
    for name in names:
        if name not in source or type(source[name]) is not type(model[name]):
            raise ValueError(
                f"features_from {where}: layer {name!r} ({type(model[name]).__name__}) is not in that model "
                f"(its layers: {source.names})"
            )
    for key in state:
        if key.split(".")[0] in names:
            if src[key].shape != state[key].shape:
                raise ValueError(
                    f"features_from {where}: {key} has shape {src[key].shape}, this architecture needs {state[key].shape}"
                )
            state[key] = src[key]
    model.load_state_dict(state)


def train_reference(
    dataset,
    architecture,
    epochs=4,
    batch_size=16,
    lr=3e-3,
    seed=0,
    n_train=6000,
    warmup=0.0,
    features_from=None,
    verbose=True,
    file=None,
):
    """Train a reference architecture on a minicam dataset: the recipe of the bundled models.

    Parameters
    ----------
    dataset : {"shapes", "digits"}
        See :data:`minicam.zoo.TRAINING_DATA`.
    architecture : {"gap", "fc"}
        :func:`minicam.zoo.gap_net` or :func:`minicam.zoo.fc_net` with their default widths.
    epochs, batch_size : int
    lr : float
        Adam's peak learning rate, with :func:`minicam.train.cosine_schedule`.
    seed : int
        One seed for everything: ``SeedSequence(seed)`` spawns the training
        data's, the initial weights' and the shuffles' generators.
    n_train : int
        Number of training images, generated afresh.
    warmup : float, default 0
        Epochs of linear learning-rate warm-up (see ``cosine_schedule``).
    features_from : str, os.PathLike or Sequential, optional
        A trained model (file or object) with the same convolutional blocks:
        they are copied and **frozen**, and only the layers after the feature
        map are trained, on the feature maps computed once (transfer
        learning). This is how ``shapes-fc`` is made from ``shapes-gap``:
        trained from scratch, the fully connected head (4096 inputs) learns
        each position apart and its ReLUs die under Adam's first steps
        (measured: chance accuracy after 4 epochs of 6000 images).
    verbose : bool
        Print progress (one line per epoch, then the held-out accuracy).
    file : writable text stream, optional

    Returns
    -------
    model : Sequential
        Trained in float32 (3 to 4 times faster than float64 here), in eval
        mode.
    metadata : dict
        What the model file stores: dataset, input shape, class names,
        architecture, training settings and the accuracy on the held-out
        data of :data:`minicam.zoo.TRAINING_DATA`, measured on the model cast to float64
        (as :func:`minicam.zoo.pretrained` loads it).
    """
    _check_choice(dataset, "dataset", TRAINING_DATA)
    _check_choice(architecture, "architecture", ARCHITECTURES)
    if architecture == "embed":
        return train_embedding_reference(dataset, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                         n_train=n_train, warmup=warmup, features_from=features_from,
                                         verbose=verbose, file=file)
    epochs, batch_size, seed, n_train, schedule, spec, source, out, say, (data_ss, init_ss, shuffle_ss) = _setup(
        dataset, epochs, batch_size, lr, seed, n_train, warmup, features_from, verbose, file, smallest=1)
    t0 = time.perf_counter()
    data = load_dataset(
        dataset, n_train, seed=np.random.default_rng(data_ss), dtype=np.float32, **spec["train_kwargs"]
    )
    c, h, w = data.images.shape[1:]
    say(
        f"{n_train} training images {dataset} {spec['train_kwargs'] or ''}({c}x{h}x{w}, "
        f"{len(data.class_names)} classes) generated in {time.perf_counter() - t0:.1f} s"
    )
    kwargs = {"input_size": (h, w)} if architecture == "fc" else {}
    model = ARCHITECTURES[architecture](
        c, len(data.class_names), rng=np.random.default_rng(init_ss), dtype=np.float32, **kwargs
    )
    trained, X, frozen = _freeze_blocks(model, source, features_from, data.images, say)
    optimizer = Adam(trained, lr=lr)
    train.fit(
        trained,
        (X, data.labels),
        epochs,
        batch_size,
        optimizer,
        np.random.default_rng(shuffle_ss),
        lr_schedule=schedule,
        verbose=verbose,
        file=out,
    )
    model.eval()

    held = spec["heldout"]
    test = load_dataset(dataset, held["n"], seed=held["seed"], **held["kwargs"])
    model64 = copy.deepcopy(model).astype(np.float64)
    res = train.evaluate(model64, test.images, test.labels)
    say(
        f"held-out accuracy {100.0 * res['accuracy']:.2f}% ({held['n']} images, seed {held['seed']}"
        + (f", {held['kwargs']}" if held["kwargs"] else "")
        + f"), loss {res['loss']:.4f}"
    )
    metadata = {
        "dataset": dataset,
        "dataset_kwargs": spec["train_kwargs"],
        "input_shape": [int(c), int(h), int(w)],
        "class_names": list(data.class_names),
        "architecture": architecture,
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": float(lr),
            "warmup": float(warmup),
            "seed": seed,
            "n_train": n_train,
            "optimizer": "Adam",
            "lr_schedule": "cosine_schedule (per step)",
            "dtype": "float32",
            "frozen_layers": frozen,
            "features_from": None if features_from is None or isinstance(features_from, Sequential) else os.fspath(features_from),
        },
        "heldout": held,
        "heldout_accuracy": res["accuracy"],
        "heldout_loss": res["loss"],
    }
    return model, metadata


EMBEDDING_RECIPE = {"dim": 16, "margin": 0.2, "mining": "semi-hard"}
"""The embedding recipe's fixed settings: embedding size, triplet margin (FaceNet's), triplet mining."""


def _recall_summary(model, dataset, n, seed, kwargs):
    """Leave-one-out retrieval of fresh data: Recall@k, 1-NN predictions and the semi-hard triplet loss."""
    test = load_dataset(dataset, n, seed=seed, **kwargs)
    emb = embedding.embed(model, test.images)
    recall = embedding.recall_at_k(emb, test.labels, ks=(1, 2, 4, 8))
    nn = embedding.cosine_neighbours(emb, emb, 1, exclude_self=True)[:, 0]
    loss, _ = embedding.batch_triplet_loss(
        emb, embedding.semi_hard_triplets(emb, test.labels), EMBEDDING_RECIPE["margin"])
    return test, recall, test.labels[nn], loss


def train_embedding_reference(dataset, epochs=5, batch_size=64, lr=3e-3, seed=0, n_train=3000, warmup=0.0,
                              features_from=None, verbose=True, file=None):
    """Train :func:`minicam.zoo.embed_net` with the triplet loss: the recipe of ``shapes-embed``.

    Labels only choose the triplets (:func:`minicam.embedding.semi_hard_triplets`,
    margin 0.2, embedding size 16: :data:`EMBEDDING_RECIPE`); the network
    has no class scores.

    Parameters
    ----------
    dataset, epochs, batch_size, lr, seed, n_train, warmup, verbose, file
        As :func:`train_reference` (a batch of 64 holds ~16 images of each
        of the 4 shapes, so every anchor has positives).
    features_from : str, os.PathLike or Sequential, optional
        A trained model whose convolutional blocks are copied and frozen
        (as the paper starts from a pretrained network): only ``fc`` is
        trained, on feature maps computed once. ``shapes-embed`` uses
        ``shapes-gap``'s blocks. From scratch (None) the recipe runs, but in
        a minute of training it stays at chance (Recall@1 0.25-0.28 after
        150-200 steps at several margins, rates and samplers, measured):
        the embeddings contract instead of separating.

    Returns
    -------
    model, metadata
        As :func:`train_reference`; ``heldout_accuracy`` is the leave-one-out
        Recall@1 of the held-out images (float64), ``heldout_recall`` the
        Recall@1/2/4/8 overall and per class.
    """
    from .zoo import embed_net

    _check_choice(dataset, "dataset", TRAINING_DATA)
    epochs, batch_size, seed, n_train, schedule, spec, source, out, say, (data_ss, init_ss, shuffle_ss) = _setup(
        dataset, epochs, batch_size, lr, seed, n_train, warmup, features_from, verbose, file, smallest=2)
    data = load_dataset(dataset, n_train, seed=np.random.default_rng(data_ss), dtype=np.float32, **spec["train_kwargs"])
    c, h, w = data.images.shape[1:]
    model = embed_net(c, EMBEDDING_RECIPE["dim"], rng=np.random.default_rng(init_ss), dtype=np.float32)
    trained, X, frozen = _freeze_blocks(model, source, features_from, data.images, say)
    embedding.fit_embedding(trained, X, data.labels, epochs, batch_size, Adam(trained, lr=lr),
                            np.random.default_rng(shuffle_ss), margin=EMBEDDING_RECIPE["margin"],
                            mining=EMBEDDING_RECIPE["mining"], lr_schedule=schedule, verbose=verbose, file=out)
    model.eval()
    held = spec["heldout"]
    model64 = copy.deepcopy(model).astype(np.float64)
    _, recall, _, loss = _recall_summary(model64, dataset, held["n"], held["seed"], held["kwargs"])
    say(f"held-out retrieval ({held['n']} images, seed {held['seed']}, leave-one-out): "
        + ", ".join(f"Recall@{k} {100 * recall[k]:.1f}%" for k in (1, 2, 4, 8)))
    metadata = {
        "dataset": dataset,
        "dataset_kwargs": spec["train_kwargs"],
        "input_shape": [int(c), int(h), int(w)],
        "class_names": list(data.class_names),
        "architecture": "embed",
        "training": {
            "epochs": epochs, "batch_size": batch_size, "lr": float(lr), "warmup": float(warmup), "seed": seed,
            "n_train": n_train, "optimizer": "Adam", "lr_schedule": "cosine_schedule (per step)",
            "dtype": "float32", "frozen_layers": frozen, "loss": "triplet_loss", **EMBEDDING_RECIPE,
            "features_from": None if features_from is None or isinstance(features_from, Sequential)
            else os.fspath(features_from),
        },
        "heldout": held,
        "heldout_accuracy": recall[1],
        "heldout_loss": loss,
        "heldout_recall": {str(k): recall[k] for k in (1, 2, 4, 8)},
        "heldout_recall_by_class": {data.class_names[c_]: {str(k): v for k, v in r.items()}
                                    for c_, r in recall["by_label"].items()},
    }
    return model, metadata


def _setup(dataset, epochs, batch_size, lr, seed, n_train, warmup, features_from, verbose, file, smallest):
    """What every recipe checks and prepares: the counts, the schedule, the source model, the printer, the seeds.

    ``smallest`` is the least batch size and training-set size (2 for
    triplets, which need two images). One ``SeedSequence(seed)`` spawns the
    data's, the initial weights' and the shuffles' streams.
    """
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=smallest)
    seed = check_int(seed, "seed", minimum=0)
    n_train = check_int(n_train, "n_train", minimum=smallest)
    schedule = train.cosine_schedule(lr, epochs, warmup=warmup)
    out = sys.stdout if file is None else file
    source = None
    if features_from is not None:
        source = features_from if isinstance(features_from, Sequential) else io.load(features_from, dtype=np.float32)

    def say(text):
        if verbose:
            print(text, file=out, flush=True)

    streams = np.random.SeedSequence(seed).spawn(3)
    return epochs, batch_size, seed, n_train, schedule, TRAINING_DATA[dataset], source, out, say, streams


def _freeze_blocks(model, source, features_from, images, say):
    """``(trained, X, frozen)``: the whole model on the images, or (with a ``source``) its head on frozen features.

    With a source model, the blocks up to the feature map are copied from it
    and frozen; ``trained`` is a Sequential over the same layer objects as
    the head (training it trains ``model``'s head), ``X`` the feature maps
    computed once, ``frozen`` the frozen layers' names.
    """
    if source is None:
        return model, images, []
    k = _feature_index(model, images.shape[1:])
    where = repr(os.fspath(features_from)) if not isinstance(features_from, Sequential) else "(a model)"
    _copy_blocks(model, source, k, where)
    blocks, trained = Sequential(model.items()[: k + 1]), Sequential(model.items()[k + 1 :])
    t1 = time.perf_counter()
    X = _features(blocks, images)
    say(f"frozen blocks {blocks.names[0]}..{blocks.names[-1]} from {where}; feature maps {X.shape[1:]} "
        f"in {time.perf_counter() - t1:.1f} s")
    return trained, X, blocks.names


def _features(blocks, X, batch_size=500):
    """Output of ``blocks`` (eval mode) for every image, batch by batch."""
    blocks.eval()
    return np.concatenate([blocks.forward(X[i : i + batch_size]) for i in range(0, X.shape[0], batch_size)])


def evaluate_pretrained(name, n=None, seed=None):
    """Accuracy and confusion matrix of a bundled model on fresh held-out data.

    Parameters
    ----------
    name : str
        A key of :data:`minicam.zoo.PRETRAINED`.
    n, seed : int, optional
        Number of held-out images and their seed (default: the model's
        ``heldout`` entry). Any seed gives unseen images (see
        :data:`minicam.zoo.TRAINING_DATA`).

    Returns
    -------
    dict
        ``accuracy``, ``loss``, ``n``, ``seed``, ``confusion`` (ndarray
        (M, M), rows true), ``class_names``, ``dataset``, ``kwargs``.
    """
    model = pretrained(name)
    info = PRETRAINED[name]
    held = info["heldout"]
    n = held["n"] if n is None else check_int(n, "n", minimum=1)
    seed = held["seed"] if seed is None else check_int(seed, "seed", minimum=0)
    if info["architecture"] == "embed":
        # No class scores: "accuracy" is leave-one-out Recall@1 (the 1-NN label), "loss" the triplet loss.
        test, recall, pred, loss = _recall_summary(model, info["dataset"], n, seed, held["kwargs"])
        res = {"accuracy": recall[1], "loss": loss}
    else:
        test = load_dataset(info["dataset"], n, seed=seed, **held["kwargs"])
        res = train.evaluate(model, test.images, test.labels)
        pred = train.predict(model, test.images)
    return {
        "accuracy": res["accuracy"],
        "loss": res["loss"],
        "n": n,
        "seed": seed,
        "confusion": train.confusion_matrix(test.labels, pred, len(info["class_names"])),
        "class_names": list(info["class_names"]),
        "dataset": info["dataset"],
        "kwargs": dict(held["kwargs"]),
    }
