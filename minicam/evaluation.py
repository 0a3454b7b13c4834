"""The benchmark behind ``python -m minicam evaluate``: every method, the papers' metrics, two baselines.

For each bundled model, on fresh held-out data (seeds never used in
training), every explanation method minicam has and two baselines (a seeded
random map and a centred Gaussian) are scored with :mod:`minicam.metrics`:

- on single-object ``shapes``: localization accuracy (15% rule, IoU >= 0.5;
  also at 50%), pointing game (on the mask, and within 15 px at 224 px scaled
  to the image), energy in the mask, faithfulness (Spearman rho with
  occlusion), deletion and insertion areas, Average Drop, Increase in
  Confidence -- all for the ground-truth class;
- on two-object ``scenes``: class discrimination;
- cascading randomization (Adebayo et al. 2018) on a few images.

Each method's maps are computed once per data set and shared by the metrics.
:func:`run` returns the numbers; :func:`markdown_table`, :func:`write_csv` and
:func:`write_figures` present them. Nothing here imports matplotlib until a
figure is written.
"""

import csv
import functools
import os
import time

import numpy as np

from ._validate import check_int
from .datasets import scenes as make_scenes
from .datasets import shapes as make_shapes
from .explain._core import cam_applies, check_input, last_feature_layer
from .explain.cams import cam, grad_cam, grad_cam_plus_plus, hires_cam, layer_cam, xgrad_cam
from .explain.gradient_free import eigen_cam, score_cam
from .explain.gradients import deconvnet, guided_backprop, guided_grad_cam, saliency, smoothgrad
from .explain.perturbation import occlusion
from .metrics import (
    average_drop,
    cascading_randomization,
    class_discrimination,
    deletion_insertion,
    energy_in_mask,
    explain_maps,
    faithfulness,
    increase_in_confidence,
    localization,
    pointing_game,
)
from .zoo import PRETRAINED, pretrained

__all__ = [
    "SIZES",
    "MODELS",
    "COLUMNS",
    "random_map",
    "center_gaussian",
    "methods",
    "run",
    "markdown_table",
    "write_csv",
    "write_figures",
]

# Models with single-object data, two-object scenes and boxes/masks to score against.
MODELS = ("shapes-gap", "shapes-fc")

# Sizes of a run: images for the map metrics, for the curves and faithfulness
# (deletion/insertion and occlusion cost many forward passes), scenes, images
# for the sanity check; deletion/insertion steps; SmoothGrad samples.
SIZES = {
    "default": {"images": 80, "curves": 20, "scenes": 24, "cascade": 5, "steps": 10, "smoothgrad": 8},
    "quick": {"images": 4, "curves": 2, "scenes": 1, "cascade": 1, "steps": 2, "smoothgrad": 1},
}

# Seeds of the held-out data: any int seed gives images no model was trained
# on (training streams come from SeedSequence(seed).spawn, see zoo.TRAINING_DATA);
# the models never saw two-object scenes at all.
SHAPES_SEED = 123
SCENES_SEED = 321

# (key, header, format) of the table's columns; arrows say which way is better.
COLUMNS = (
    ("loc15", "loc. acc. 15% ↑", "{:.0%}"),
    ("loc50", "loc. acc. 50% ↑", "{:.0%}"),
    ("iou15", "mean IoU 15% ↑", "{:.2f}"),
    ("point", "pointing ↑", "{:.0%}"),
    ("point_tol", "pointing ±tol ↑", "{:.0%}"),
    ("energy", "energy in mask ↑", "{:.2f}"),
    ("class_own", "class: own ↑", "{:.0%}"),
    ("class_other", "class: other ↓", "{:.0%}"),
    ("class_rho", "ρ between classes ↓", "{:.2f}"),
    ("faithfulness", "ρ with occlusion ↑", "{:.2f}"),
    ("deletion", "deletion AUC ↓", "{:.3f}"),
    ("insertion", "insertion AUC ↑", "{:.3f}"),
    ("average_drop", "Average Drop % ↓", "{:.1f}"),
    ("increase", "Increase in Conf. % ↑", "{:.0f}"),
    ("sanity_top", "ρ top layer random ↓", "{:.2f}"),
    ("sanity_all", "ρ all layers random ↓", "{:.2f}"),
)


# -- baselines ------------------------------------------------------------------


def random_map(model, x, class_idx=None, seed=0):
    """Baseline: i.i.d. uniform noise at the image's size, (N, H, W).

    Drawn from ``numpy.random.default_rng(seed)`` at every call, so the same
    ``x.shape`` gives the same maps: the model and the class are ignored (a
    map that cannot pass a sanity check).
    """
    check_input(model, x, image=True)
    n, _, height, width = x.shape
    return np.random.default_rng(seed).random((n, height, width))


def center_gaussian(model, x, class_idx=None, sigma=0.25):
    """Baseline: a Gaussian bump at the image's centre, standard deviation ``sigma`` times its size, (N, H, W).

    The "centre bias" prior: objects are often near the middle. Ignores the
    model and the class.
    """
    check_input(model, x, image=True)
    n, _, height, width = x.shape
    rows = (np.arange(height) + 0.5 - height / 2) / (sigma * height)
    cols = (np.arange(width) + 0.5 - width / 2) / (sigma * width)
    bump = np.exp(-0.5 * (rows[:, None] ** 2 + cols[None, :] ** 2))
    return np.broadcast_to(bump, (n, height, width)).copy()


def _named(fn, name):
    fn.__name__ = name
    return fn


def methods(model, x_shape, smoothgrad_samples=10):
    """The methods compared, in table order: ``[(label, method(model, x, class_idx)), ...]``.

    CAM only when the model has a GAP -> Linear head. Occlusion's window is a
    quarter of the image and its stride an eighth (49 windows on a square
    image), SmoothGrad averages saliency over ``smoothgrad_samples`` noisy
    copies with a fixed seed, Eigen-CAM ignores the class (it is class-agnostic).
    """
    _, _, height, width = x_shape
    layer = last_feature_layer(model, model.output_shapes(tuple(x_shape)))
    window, stride = (max(1, height // 4), max(1, width // 4)), (max(1, height // 8), max(1, width // 8))
    table = []
    if cam_applies(model, layer):
        table.append(("CAM", cam))
    table += [
        ("Grad-CAM", grad_cam),
        ("Grad-CAM counterfactual", _named(functools.partial(grad_cam, counterfactual=True), "grad_cam_counterfactual")),
        ("Grad-CAM++", grad_cam_plus_plus),
        ("HiResCAM", hires_cam),
        ("XGrad-CAM", xgrad_cam),
        ("LayerCAM", layer_cam),
        ("Score-CAM", _named(functools.partial(score_cam, batch_size=512), "score_cam")),
        ("Eigen-CAM", _named(lambda m, x, class_idx: eigen_cam(m, x), "eigen_cam")),
        ("saliency", saliency),
        ("guided backprop", guided_backprop),
        ("deconvnet", deconvnet),
        ("Guided Grad-CAM", guided_grad_cam),
        ("occlusion", _named(functools.partial(occlusion, window=window, stride=stride, batch_size=512), "occlusion")),
        ("SmoothGrad", _named(lambda m, x, class_idx: smoothgrad(saliency, m, x, class_idx, n_samples=smoothgrad_samples,
                                                                 rng=0), "smoothgrad")),
        ("random (baseline)", random_map),
        ("centre Gaussian (baseline)", center_gaussian),
    ]
    return table


# -- the run ----------------------------------------------------------------------


class _Fixed:
    """A "method" returning maps already computed (to score them without recomputing)."""

    def __init__(self, maps, name):
        self.maps, self.__name__ = maps, name

    def __call__(self, model, x, class_idx):
        return self.maps


def _evaluate_model(name, size, say):
    model = pretrained(name)
    data = make_shapes(size["images"], seed=SHAPES_SEED)
    sc = make_scenes(size["scenes"], seed=SCENES_SEED)
    x, labels = data.images, data.labels
    height = x.shape[2]
    tolerance = 15 * height / 224  # Zhang et al.'s 15 px at 224 px, scaled
    nc, ns = size["curves"], size["cascade"]
    table = methods(model, x.shape, size["smoothgrad"])
    try:
        check_input(model, sc.images, image=True)
    except ValueError:
        sc = None  # a Flatten head takes its training size only; two objects need 48 px: no class columns
    rows, curves, sanity, examples = {}, {}, {}, {}
    occlusion_maps = None
    for i, (label, method) in enumerate(table):
        t0 = time.perf_counter()
        maps = explain_maps(model, method, x, labels)            # (N, H, W), ground-truth classes
        if label == "occlusion":
            occlusion_maps = maps
        rows[label] = {"maps": maps, "method": method}
        say(f"  [{name}] {i + 1:2d}/{len(table)} {label}: maps of {len(x)} images ({time.perf_counter() - t0:.1f} s)")
    if occlusion_maps is None:  # pragma: no cover - occlusion is always in the table
        raise RuntimeError("occlusion missing from the methods")
    for i, (label, method) in enumerate(table):
        t0 = time.perf_counter()
        maps = rows[label].pop("maps")
        r = rows[label]
        ious, r["loc15"] = localization(maps, data.boxes, threshold=0.15)
        r["iou15"] = float(ious.mean())
        r["loc50"] = localization(maps, data.boxes, threshold=0.5)[1]
        r["point"] = pointing_game(maps, data.masks)[1]
        r["point_tol"] = pointing_game(maps, data.masks, tolerance=tolerance)[1]
        r["energy"] = energy_in_mask(maps, data.masks)[1]
        if sc is None:
            r["class_own"] = r["class_other"] = r["class_rho"] = None
        else:
            disc = class_discrimination(model, method, sc)
            r["class_own"], r["class_other"], r["class_rho"] = disc["own"], disc["other"], disc["class_correlation"]
        r["faithfulness"] = faithfulness(model, _Fixed(maps[:nc], method.__name__), x[:nc], labels[:nc],
                                         reference=occlusion_maps[:nc])[1]
        di = deletion_insertion(model, x[:nc], maps[:nc], labels[:nc], steps=size["steps"])
        r["deletion"], r["insertion"] = float(di["deletion_auc"].mean()), float(di["insertion_auc"].mean())
        curves[label] = (di["fractions"], di["deletion"].mean(axis=0), di["insertion"].mean(axis=0))
        r["average_drop"] = average_drop(model, x, maps, labels)[1]
        r["increase"] = increase_in_confidence(model, x, maps, labels)[1]
        casc = cascading_randomization(model, method, x[:ns], labels[:ns], rng=0)
        sanity[label] = casc
        r["sanity_top"], r["sanity_all"] = float(casc["spearman"][0]), float(casc["spearman"][-1])
        r["sanity_abs_top"], r["sanity_abs_all"] = float(casc["spearman_abs"][0]), float(casc["spearman_abs"][-1])
        if label in ("Grad-CAM", "guided backprop"):
            examples[label] = maps[:4]
        del r["method"]
        say(f"  [{name}] {i + 1:2d}/{len(table)} {label}: metrics ({time.perf_counter() - t0:.1f} s)")
    return {"rows": rows, "curves": curves, "sanity": sanity, "examples": examples,
            "data": {"images": x[:4], "boxes": data.boxes[:4], "class_names": data.class_names, "labels": labels[:4]},
            "tolerance": tolerance, "n": {"images": len(x), "curves": nc, "scenes": 0 if sc is None else len(sc), "cascade": ns}}


def run(models=MODELS, size="default", say=print):
    """Score every method on every model; return ``{model: result}``.

    Parameters
    ----------
    models : sequence of str
        Names from :data:`MODELS`.
    size : {"default", "quick"} or dict
        Keys of :data:`SIZES`, or a dict with the same keys.
    say : callable
        Receives one progress line per step (``print`` by default).

    Returns
    -------
    dict
        Per model: ``"rows"`` ``{method: {column key: value}}`` (also
        ``sanity_abs_top``/``sanity_abs_all``), ``"curves"`` ``{method:
        (fractions, mean deletion, mean insertion)}``, ``"sanity"`` ``{method:
        cascading_randomization result}``, ``"examples"``, ``"data"``, ``"n"``.
    """
    size = check_size(size)
    models = check_models(models)
    out = {}
    for name in models:
        say(f"{name}: {size['images']} held-out shapes (seed {SHAPES_SEED}), {size['scenes']} scenes "
            f"(seed {SCENES_SEED}), curves on {size['curves']}, sanity check on {size['cascade']}")
        out[name] = _evaluate_model(name, size, say)
    return out


def check_size(size):
    """A size name of :data:`SIZES` or a dict with its keys, as a dict of ints."""
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)} or a dict, got {size!r}")
        return dict(SIZES[size])
    if not isinstance(size, dict) or set(size) != set(SIZES["default"]):
        raise ValueError(f"size must be one of {sorted(SIZES)} or a dict with keys {sorted(SIZES['default'])}, got {size!r}")
    size = {k: check_int(v, f"size[{k!r}]", minimum=1) for k, v in size.items()}
    for k in ("curves", "cascade"):
        if size[k] > size["images"]:
            raise ValueError(f"size[{k!r}] must be at most size['images'] = {size['images']}, got {size[k]}")
    return size


def check_models(models):
    """A non-empty list of names from :data:`MODELS`."""
    if isinstance(models, str) or not hasattr(models, "__iter__"):
        raise TypeError(f"models must be a list of model names, got {models!r}")
    models = list(models)
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        extra = f" ({', '.join(sorted(set(PRETRAINED) - set(MODELS)))}: no boxes or scenes to score against)"
        raise ValueError(f"models must be among {list(MODELS)}{extra}, got {models!r}")
    return models


# -- presentation -------------------------------------------------------------------


def markdown_table(result):
    """One model's result as a Markdown table, one row per method."""
    head = "| method | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    rule = "| --- |" + " ---: |" * len(COLUMNS)
    lines = [head, rule]
    for label, r in result["rows"].items():
        cells = ["—" if r[k] is None or (isinstance(r[k], float) and np.isnan(r[k])) else fmt.format(r[k])
                 for k, _, fmt in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(results, path):
    """All models' rows to one CSV: ``model, method`` then every column key (full precision)."""
    keys = [k for k, _, _ in COLUMNS] + ["sanity_abs_top", "sanity_abs_all"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "method"] + keys)
        for name, res in results.items():
            for label, r in res["rows"].items():
                w.writerow([name, label] + ["" if r[k] is None else repr(float(r[k])) for k in keys])


# Methods drawn in the curve figures (all of them would be unreadable).
FIGURE_METHODS = ("Grad-CAM", "Score-CAM", "saliency", "guided backprop", "Guided Grad-CAM", "occlusion",
                  "random (baseline)", "centre Gaussian (baseline)")


def write_figures(name, result, out_dir, dpi=100):
    """Deletion/insertion curves, sanity-check curves and a localization example, as PNGs; return the paths."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .metrics import box_from_map, iou

    paths = []
    shown = [m for m in FIGURE_METHODS if m in result["curves"]]
    colors = {m: f"C{i}" for i, m in enumerate(shown)}
    styles = {m: ("--" if "baseline" in m else "-") for m in shown}

    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for ax, which, title in ((axes[0], 1, "deletion (lower area is better)"),
                             (axes[1], 2, "insertion (higher area is better)")):
        for m in shown:
            c = result["curves"][m]
            ax.plot(c[0], c[which], styles[m], color=colors[m], label=m)
        ax.set_xlabel("share of pixels removed" if which == 1 else "share of pixels inserted")
        ax.set_ylabel("softmax probability of the true class")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.02)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{name}: deletion and insertion (RISE), mean over {result['n']['curves']} held-out images",
                 fontsize=10)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, f"{name}-deletion-insertion.png"))
    fig.savefig(paths[-1], dpi=dpi)

    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "spearman", "signed maps"), (axes[1], "spearman_abs", "absolute values")):
        for m in shown:
            s = result["sanity"][m]
            ax.plot(range(len(s["layers"]) + 1), np.r_[1.0, s[key]], styles[m] + "o", ms=3, color=colors[m], label=m)
        layers = next(iter(result["sanity"].values()))["layers"]
        ax.set_xticks(range(len(layers) + 1), ["trained"] + [f"+{n}" for n in layers], fontsize=7, rotation=30)
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_ylim(-0.3, 1.05)
        ax.set_ylabel("Spearman ρ with the trained map")
        ax.set_title(f"cascading randomization, {title}", fontsize=10)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{name}: layers re-initialised from the top down, mean over {result['n']['cascade']} images",
                 fontsize=10)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, f"{name}-sanity-checks.png"))
    fig.savefig(paths[-1], dpi=dpi)

    data = result["data"]
    ex = result["examples"]
    k = len(data["images"])
    fig = Figure(figsize=(2.3 * k, 2.5 * len(ex) + 0.4))
    axes = fig.subplots(len(ex), k, squeeze=False)
    for row, (label, maps) in enumerate(ex.items()):
        for i in range(k):
            ax = axes[row, i]
            m = maps[i]
            ax.imshow(np.clip(data["images"][i].transpose(1, 2, 0), 0, 1))
            im = ax.imshow(m / m.max() if m.max() > 0 else m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.contour(m, levels=[0.15 * m.max()], colors="white", linewidths=0.8)
            x0, y0, x1, y1 = data["boxes"][i]
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
            pred = box_from_map(m)
            if pred is not None:
                px0, py0, px1, py1 = pred
                ax.add_patch(Rectangle((px0 - 0.5, py0 - 0.5), px1 - px0, py1 - py0, fill=False, ec="red", lw=1.5,
                                       ls="--"))
            ax.set_title(f"{label}\n{data['class_names'][data['labels'][i]]}: IoU {iou(pred, data['boxes'][i]):.2f}",
                         fontsize=8)
            ax.axis("off")
        fig.colorbar(im, ax=axes[row].tolist(), fraction=0.03, pad=0.02, label="map / max")
    fig.suptitle("15% rule: white contour at 15% of the map's maximum, red dashed box around its largest "
                 "blob, green true box", fontsize=8)
    paths.append(os.path.join(out_dir, f"{name}-localization-example.png"))
    fig.savefig(paths[-1], dpi=dpi)
    return paths
