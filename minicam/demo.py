"""The ``demo`` and ``explain`` commands, as functions a notebook can call too.

- :func:`run_demo` loads the bundled models, explains held-out images
  (shapes, digits) and a two-object scene, writes the figures, checks the
  identity "Grad-CAM before its ReLU = CAM / (h w)" live on the GAP model, and
  reports which object each class's Grad-CAM points at.
- :func:`explain_image` explains a user's image file with one method.

Both need matplotlib; :func:`explain_image` needs Pillow too.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

from .explain._core import check_layer_name
from .metrics import IDENTITY_TOL, identity_error, peak_object, pointing_rate

__all__ = [
    "METHODS",
    "run_demo",
    "explain_image",
    "parse_class",
    "output_file_problem",
    "output_folder_problem",
]

# --------------------------------------------------------------------------
# Output paths, checked before any work (the commands' and explain_image's rule)
# --------------------------------------------------------------------------


def output_file_problem(path, flag, suffix=None):
    """Why ``path`` cannot be written as a file (a sentence naming ``flag`` and the path), or None.

    Checked before any work: its folder exists and is a folder, the path is
    not a folder, and it can be opened for writing -- tried for real (append
    mode, so an existing file is not truncated; a file created by the probe
    is removed), because ``os.access`` says yes to root for a read-only folder.
    """
    text = os.fspath(path)
    if suffix is not None and not text.lower().endswith(suffix):
        return f"{flag} must name a {suffix} file (the format is chosen by the suffix), got {text!r}"
    full = os.path.abspath(text)
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        return f"{flag} must be a file path, got the folder {text!r}"
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        return f"{flag} {text!r}: its folder {folder!r} {what}"
    existed = os.path.exists(full)
    try:
        with open(full, "ab"):
            pass
    except OSError as err:
        return f"{flag} {text!r} cannot be written: {err.strerror or err}"
    if not existed:
        os.remove(full)
    return None


def _check_dpi(dpi):
    from ._validate import check_int

    dpi = check_int(dpi, "dpi")
    if not 20 <= dpi <= 600:
        raise ValueError(f"dpi must be in [20, 600], got {dpi}")
    return dpi


def output_folder_problem(path, flag):
    """Why ``path`` cannot be used (or created) as an output folder, or None; nothing is created."""
    import tempfile

    text = os.fspath(path)
    full = os.path.abspath(text)
    if os.path.exists(full) and not os.path.isdir(full):
        return f"{flag} must be a directory (folder), got the file {text!r}"
    existing = full
    while not os.path.exists(existing):  # the nearest ancestor that exists must be a writable folder
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{flag} {text!r} cannot be created: {existing!r} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"{flag} {text!r}: cannot write into {existing!r}: {err.strerror or err}"
    return None


# --------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------

# Held-out data: the models were trained on other seeds (see zoo.PRETRAINED).
_HELDOUT_SEED = 123
_SCENE_SEED = 7
_N_SCENES_RATE = 100
_N_IDENTITY = 32
_N_ACCURACY = 200


def _load_models():
    from . import zoo

    return {name: zoo.pretrained(name) for name in ("shapes-gap", "shapes-fc", "digits-gap")}


def _one_per_class(labels, num_classes, count):
    """Indices of the first image of classes 0, 1, ... (``count`` of them)."""
    picked = []
    for c in range(num_classes):
        hits = np.flatnonzero(labels == c)
        if len(hits):
            picked.append(int(hits[0]))
        if len(picked) == count:
            break
    return picked


def _save(fig, path, dpi):
    fig.savefig(path, dpi=dpi)
    return str(path)


def run_demo(out_dir="minicam-demo", dpi=100, verbose=True, file=None):
    """Explain held-out images with the bundled models; write figures; report.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing; PNG figures are written there.
    dpi : int
        Resolution of the PNGs (a panel is 2 inches; 100 dpi: 200 pixels).
    verbose : bool
        Print the report as it is built.
    file : writable text stream, optional
        Where to print (default: standard output).

    Returns
    -------
    dict
        ``"text"`` (the report), ``"identity_error"``, ``"identity_ok"``,
        ``"figures"`` (paths), ``"scene"`` (per-class findings),
        ``"pointing"`` (rates), ``"accuracy"`` (per model), ``"seconds"``.
    """
    import matplotlib  # noqa: F401  (fail here, early, if it is missing)

    from . import datasets, viz, zoo
    from .explain.cams import grad_cam
    from .explain.postprocess import upsample
    from .train import predict

    t0 = time.perf_counter()
    problem = output_folder_problem(out_dir, "out_dir")
    if problem:
        raise ValueError(problem)
    _check_dpi(dpi)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = sys.stdout if file is None else file
    lines = []

    def say(text=""):
        lines.append(text)
        if verbose:
            print(text, file=stream, flush=True)

    models = _load_models()
    names = {k: zoo.PRETRAINED[k]["class_names"] for k in models}
    shapes = datasets.shapes(_N_ACCURACY, seed=_HELDOUT_SEED)
    digits = datasets.cluttered_digits(_N_ACCURACY, seed=_HELDOUT_SEED, split="test")
    scenes = datasets.scenes(_N_SCENES_RATE, seed=_SCENE_SEED)

    say("minicam demo: bundled models on held-out data, float64")
    accuracy, correct = {}, {}
    for name, data in (("shapes-gap", shapes), ("shapes-fc", shapes), ("digits-gap", digits)):
        correct[name] = predict(models[name], data.images) == data.labels
        accuracy[name] = float(np.mean(correct[name]))
        say(f"  {name:<10}  held-out accuracy {100 * accuracy[name]:5.1f}%  ({len(data)} {data.name} images, seed {_HELDOUT_SEED})")

    # -- the identity, measured live ------------------------------------------
    gap = models["shapes-gap"]
    err, scale, (h, w) = identity_error(gap, shapes.images[:_N_IDENTITY])
    ok = err <= IDENTITY_TOL
    say()
    say("Identity (Selvaraju et al. 2017, Sec. 3.1): on a GAP -> Linear network, Grad-CAM before its ReLU = CAM / (h*w)")
    say(
        f"  max |GradCAM_signed - CAM/(h*w)| = {err:.2e}  on shapes-gap, {_N_IDENTITY} images x "
        f"{len(names['shapes-gap'])} classes, {h}x{w} maps (max |CAM/(h*w)| = {scale:.2g})  "
        f"limit {IDENTITY_TOL:.0e}: {'PASS' if ok else 'FAIL'}"
    )

    # -- the two-object scene ---------------------------------------------------
    i = 0
    image, labels = scenes.images[i], scenes.labels[i]
    H, W = image.shape[1:]
    cls = names["shapes-gap"]
    objects = [cls[k] for k in labels]
    say()
    say(f"Two-object scene (scenes seed {_SCENE_SEED}, #{i}: a {objects[0]} and a {objects[1]}), shapes-gap, maps upsampled to {H}x{W}:")
    scene_report = []
    for c in labels:
        found = {}
        for kind, cf in (("Grad-CAM", False), ("counterfactual", True)):
            m = upsample(grad_cam(gap, image[None], int(c), counterfactual=cf), (H, W))[0]
            k, where, peak = peak_object(m, scenes.masks[i], scenes.boxes[i])
            if where == "flat":
                found[kind] = ("flat", "flat map (all zero): nothing pushes the score that way")
            elif k is None:
                found[kind] = ("neither", f"peak at (row {peak[0]}, col {peak[1]}) -> neither object")
            else:
                found[kind] = (objects[k], f"peak at (row {peak[0]}, col {peak[1]}) -> the {objects[k]} ({'inside its mask' if where == 'mask' else 'inside its box, off the mask'})")
        scene_report.append({"class": cls[c], "grad_cam": found["Grad-CAM"][0], "counterfactual": found["counterfactual"][0]})
        say(f"  class {cls[c]:<8} Grad-CAM:       {found['Grad-CAM'][1]}")
        say(f"  {'':<14} counterfactual: {found['counterfactual'][1]}")
    rate = pointing_rate(gap, scenes)
    say(
        f"  Over {_N_SCENES_RATE} scenes ({rate['objects']} objects): the Grad-CAM peak for an object's class lies in "
        f"that object's box for {100 * rate['box']:.1f}% (in its mask {100 * rate['mask']:.1f}%)"
    )

    # -- figures ------------------------------------------------------------------
    figures = []
    pick = _one_per_class(shapes.labels, len(cls), 4)
    fig = viz.explanation_grid(
        gap, shapes.images[pick], class_names=cls, boxes=shapes.boxes[pick], labels=shapes.labels[pick],
        suptitle="shapes-gap (GAP -> Linear): held-out shapes, each explained for its predicted class",
    )
    figures.append(_save(fig, out / "shapes-gap.png", dpi))
    dpick = _one_per_class(digits.labels, 10, 4)
    fig = viz.explanation_grid(
        models["digits-gap"], digits.images[dpick], class_names=names["digits-gap"], boxes=digits.boxes[dpick],
        labels=digits.labels[dpick],
        suptitle="digits-gap: held-out handwriting (UCI digits, test split) in clutter",
    )
    figures.append(_save(fig, out / "digits-gap.png", dpi))
    fig = viz.explanation_grid(
        gap, np.repeat(scenes.images[:2], 2, axis=0), class_idx=list(scenes.labels[:2].ravel()), class_names=cls,
        boxes=np.repeat(scenes.boxes[:2], 2, axis=0),
        box_labels=[[cls[k] for k in scenes.labels[j]] for j in (0, 0, 1, 1)], show_peak=True,
        suptitle="two-object scenes, shapes-gap: each row explains one of the two classes (+ = peak of the map)",
    )
    figures.append(_save(fig, out / "scene.png", dpi))
    # The overview shows the first held-out image each model gets right (shapes: both
    # shapes models), so its rows show what a working model looks at; the grids above
    # take the first image of each class, right or wrong.
    s_idx = int(np.argmax(correct["shapes-gap"] & correct["shapes-fc"]))
    d_idx = int(np.argmax(correct["digits-gap"]))
    figures.append(_save(_overview(models, names, shapes, digits, scenes, s_idx, d_idx), out / "overview.png", dpi))

    say()
    say("Figures: " + ", ".join(figures))
    seconds = time.perf_counter() - t0
    say(f"Done in {seconds:.1f} s.")
    if not ok:
        say(f"FAILED: the identity error {err:.2e} exceeds {IDENTITY_TOL:.0e}")
    return {
        "text": "\n".join(lines),
        "identity_error": err,
        "identity_ok": ok,
        "figures": figures,
        "scene": scene_report,
        "pointing": rate,
        "accuracy": accuracy,
        "seconds": seconds,
    }


def _overview(models, names, shapes, digits, scenes, s_idx, d_idx):
    """One figure with every model and the scene: the README's picture."""
    from . import viz

    rows = [
        ("shapes-gap", shapes.images[s_idx], None, shapes.boxes[s_idx], None, shapes.labels[s_idx]),
        ("shapes-fc", shapes.images[s_idx], None, shapes.boxes[s_idx], None, shapes.labels[s_idx]),
        ("digits-gap", digits.images[d_idx], None, digits.boxes[d_idx], None, digits.labels[d_idx]),
    ]
    cls = names["shapes-gap"]
    for c in scenes.labels[0]:
        rows.append(("shapes-gap", scenes.images[0], int(c), scenes.boxes[0], [cls[k] for k in scenes.labels[0]], None))
    fig, axes = viz.figure(len(rows), len(viz.COLUMNS), panel=2.0, extra_height=0.3)
    for r, (name, image, c, boxes, box_labels, label) in enumerate(rows):
        viz.explanation_row(
            axes[r], models[name], image, class_idx=c, class_names=names[name], boxes=boxes,
            box_labels=box_labels, show_peak=box_labels is not None, label=label,
        )
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(
        "minicam demo: the first held-out image each model classifies correctly; "
        "the last two rows explain each class of one two-object scene (+ = peak)", fontsize=9,
    )
    return fig


# --------------------------------------------------------------------------
# explain IMAGE
# --------------------------------------------------------------------------


# Settings of the methods that have more than the common arguments; shown in
# the figure title so nothing is hidden.
OCCLUSION = {"window": 6, "stride": 2, "baseline": 0.0}
SMOOTHGRAD = {"n_samples": 50, "sigma": 0.15, "rng": 0}


def _methods():
    """Method name -> (function(model, x, class_idx, layer) -> maps, kind, note).

    kind is "map" for an (N, h, w) map drawn over the image, "signed" for an
    (N, C, H, W) gradient-like map drawn centred at 0.
    """
    from . import explain as ex

    return {
        "cam": (lambda m, x, c, l: ex.cam(m, x, c, layer=l), "map", "signed, Zhou et al. 2016"),
        "grad-cam": (lambda m, x, c, l: ex.grad_cam(m, x, c, layer=l), "map", "ReLU"),
        "counterfactual": (lambda m, x, c, l: ex.grad_cam(m, x, c, layer=l, counterfactual=True), "map", "ReLU of −α"),
        "guided-grad-cam": (lambda m, x, c, l: ex.guided_grad_cam(m, x, c, layer=l), "signed", "signed"),
        "guided-backprop": (lambda m, x, c, l: ex.guided_backprop(m, x, c), "signed", "signed"),
        "saliency": (lambda m, x, c, l: ex.saliency(m, x, c), "signed", "signed ∂y/∂x"),
        "saliency-map": (lambda m, x, c, l: ex.saliency_map(ex.saliency(m, x, c)), "map", "max_c |∂y/∂x|"),
        "deconvnet": (lambda m, x, c, l: ex.deconvnet(m, x, c), "signed", "signed"),
        "grad-cam++": (lambda m, x, c, l: ex.grad_cam_plus_plus(m, x, c, layer=l), "map", "ReLU"),
        "hirescam": (lambda m, x, c, l: ex.hires_cam(m, x, c, layer=l), "map", "ReLU"),
        "xgrad-cam": (lambda m, x, c, l: ex.xgrad_cam(m, x, c, layer=l), "map", "ReLU"),
        "layercam": (lambda m, x, c, l: ex.layer_cam(m, x, c, layer=l), "map", "ReLU"),
        "score-cam": (lambda m, x, c, l: ex.score_cam(m, x, c, layer=l), "map", "ReLU, softmax score"),
        "eigen-cam": (lambda m, x, c, l: ex.eigen_cam(m, x, layer=l), "map", "class-agnostic"),
        "occlusion": (
            lambda m, x, c, l: ex.occlusion(m, x, c, **OCCLUSION), "map",
            f"window {OCCLUSION['window']}, stride {OCCLUSION['stride']}, baseline {OCCLUSION['baseline']:g}",
        ),
        "smoothgrad": (
            lambda m, x, c, l: ex.smoothgrad(ex.saliency, m, x, c, **SMOOTHGRAD), "signed",
            f"saliency, {SMOOTHGRAD['n_samples']} samples, σ={SMOOTHGRAD['sigma']}",
        ),
    }


METHODS = (
    "cam", "grad-cam", "counterfactual", "guided-backprop", "guided-grad-cam", "saliency", "saliency-map",
    "deconvnet", "grad-cam++", "hirescam", "xgrad-cam", "layercam", "score-cam", "eigen-cam", "occlusion",
    "smoothgrad",
)
"""Method names of :func:`explain_image` (and of ``python -m minicam explain --method``)."""

EMBEDDING_METHODS = ("embedding-grad-cam", "embedding-db")
"""Methods of :func:`explain_image` for an embedding network (``shapes-embed``): see :mod:`minicam.embedding_demo`."""

# Methods of the input gradient or of the input itself: no feature map.
_LAYERLESS = ("guided-backprop", "saliency", "saliency-map", "deconvnet", "occlusion", "smoothgrad")


def parse_class(model_name, value):
    """``--class`` as given on the command line (an index, a class name or None) -> int or None."""
    from . import zoo

    if value is None:
        return None
    if model_name not in zoo.PRETRAINED:
        raise ValueError(f"model must be one of the bundled models {sorted(zoo.PRETRAINED)}, got {model_name!r}")
    names = zoo.PRETRAINED[model_name]["class_names"]
    if value in names:
        return names.index(value)
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"class must be an index in [0, {len(names)}) or a class name of {model_name} {names}, got {value!r}"
        ) from None


def explain_image(path, model_name, method, class_idx=None, layer=None, out=None, dpi=120, verbose=True, file=None):
    """Explain one image file with a bundled model; save the figure.

    The image is read with Pillow, converted to the model's channels (RGB or
    grey "L"; transparency dropped) and resized to the model's input size
    (bilinear) with a printed message when its size differs.

    Parameters
    ----------
    path : str or os.PathLike
        Any image file Pillow reads.
    model_name : str
        A bundled model, one of ``minicam.zoo.PRETRAINED``.
    method : str
        One of :data:`METHODS`.
    class_idx : int, optional
        Class explained; default the predicted class.
    layer : str, optional
        Feature map for the CAM methods (default: the last 4-D output).
        Not used by ``saliency``, ``guided-backprop``, ``deconvnet``.
    out : str or os.PathLike, optional
        PNG written with two panels: the input as the model sees it, and the
        explanation; its name must end in ``.png`` and its folder must exist
        (checked before any work). None: no figure.
    dpi : int
    verbose, file
        Print the prediction (to ``file``, default standard output).

    Returns
    -------
    dict
        ``"predicted"``, ``"predicted_name"``, ``"score"`` (logit),
        ``"probability"``, ``"class_idx"``, ``"map"`` (the raw explanation:
        (h, w) or (C, H, W)), ``"image"`` (C, H, W), ``"resized"`` (bool),
        ``"out"``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown model, method or layer; ``class_idx`` out of range; a file
        Pillow cannot read; ``cam`` on a model without a GAP -> Linear head.
    """
    from . import io, zoo
    from .losses import softmax

    stream = sys.stdout if file is None else file
    if model_name not in zoo.PRETRAINED:
        raise ValueError(f"model must be one of the bundled models {sorted(zoo.PRETRAINED)}, got {model_name!r}")
    if method not in METHODS + EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {list(METHODS + EMBEDDING_METHODS)}, got {method!r}")
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {str(path)!r}")
    info = zoo.PRETRAINED[model_name]
    C, H, W = info["input_shape"]
    class_names = info["class_names"]
    if class_idx is not None:
        from ._validate import check_int

        class_idx = check_int(class_idx, "class_idx", minimum=0)
        if class_idx >= len(class_names):
            raise ValueError(
                f"class_idx must be in [0, {len(class_names)}) for {model_name} "
                f"(classes {class_names}), got {class_idx}"
            )
    model = zoo.pretrained(model_name)
    if layer is not None:
        check_layer_name(model, layer, model_label=model_name)
    if layer is not None and method in _LAYERLESS:
        raise ValueError(f"method {method!r} explains the input and takes no layer, got layer={layer!r}")
    if out is not None:  # before the work: a figure that cannot be written fails now, not after it is drawn
        problem = output_file_problem(out, "out", suffix=".png")
        if problem:
            raise ValueError(problem)
    _check_dpi(dpi)
    if info.get("architecture") == "embed" or method in EMBEDDING_METHODS:
        # No classes: explained by its neighbours in a gallery (minicam.embedding_demo).
        from .embedding_demo import explain_embedding_file

        return explain_embedding_file(path, model_name, method, class_idx=class_idx, layer=layer, out=out, dpi=dpi,
                                      verbose=verbose, file=file)
    if class_idx is not None and method == "eigen-cam":
        raise ValueError(f"method 'eigen-cam' is class-agnostic (a principal component of the map) and takes no class, "
                         f"got class_idx={class_idx!r}")

    h0, w0 = io.image_size(path)  # from the header: a large photo is never decoded at full size
    resized = (h0, w0) != (H, W)
    if resized and verbose:
        print(
            f"resizing {path.name} from {h0}x{w0} to {model_name}'s input {H}x{W} "
            "(height x width, bilinear, aspect ratio not kept)",
            file=stream, flush=True,
        )
    x = io.load_image(path, size=(H, W), mode="RGB" if C == 3 else "L", verbose=False)  # (1, C, H, W)
    scores = model.forward(x)[0]
    probs = softmax(scores[None])[0]
    predicted = int(np.argmax(scores))
    explained = predicted if class_idx is None else class_idx
    if verbose:
        print(f"{model_name} predicts {class_names[predicted]!r} (class {predicted}): "
              f"logit {scores[predicted]:.3f}, softmax {probs[predicted]:.3f}", file=stream, flush=True)
        if explained != predicted:
            print(f"explaining class {class_names[explained]!r} ({explained}) instead: logit {scores[explained]:.3f}, "
                  f"softmax {probs[explained]:.3f}", file=stream, flush=True)

    func, kind, note = _methods()[method]
    explanation = func(model, x, explained, layer)[0]
    result = {
        "predicted": predicted, "predicted_name": class_names[predicted], "score": float(scores[predicted]),
        "probability": float(probs[predicted]), "class_idx": explained, "map": explanation, "image": x[0],
        "resized": resized, "out": None,
    }
    if out is not None:
        out = Path(os.fspath(out))
        fig = _explain_figure(x[0], explanation, kind, note, method, model_name, class_names, predicted, explained,
                              scores, probs)
        fig.savefig(out, dpi=dpi)
        result["out"] = str(out)
        if verbose:
            print(f"wrote {out}", file=stream, flush=True)
    return result


def _explain_figure(image, explanation, kind, note, method, model_name, class_names, predicted, explained, scores,
                    probs):
    """Two panels: the input as the model sees it | the explanation."""
    from . import viz

    fig, axes = viz.figure(1, 2, panel=3.0)
    ax0, ax1 = axes[0]
    viz.draw_image(ax0, image)
    viz.clean_axes(ax0)
    ax0.set_title(
        f"{model_name} input ({image.shape[1]}x{image.shape[2]})\n"
        f"pred: {class_names[predicted]}  logit {scores[predicted]:.2f}, p={probs[predicted]:.2f}", fontsize=8,
    )
    title = method if method == "eigen-cam" else f"{method} → {class_names[explained]}"
    if explained != predicted and method != "eigen-cam":
        title += f" (p={probs[explained]:.2f})"
    if kind == "map":
        h, w = explanation.shape
        steps = "min-max" if (h, w) == image.shape[1:] else f"{h}x{w} map, bilinear up, min-max"
        viz.overlay(image, explanation, ax=ax1, title=f"{title}\n({note}; {steps})")
    else:
        viz.show_signed(explanation, ax=ax1, title=f"{title}\n({note}, centred at 0)")
    return fig
