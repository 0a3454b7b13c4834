"""Figures: what is drawn is what the docstrings say (ranges, centring, shapes)."""

import copy
import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import minicam as mc  # noqa: E402
from minicam import viz  # noqa: E402


def gap_model(c=3, classes=4, seed=0):
    return mc.Sequential([
        ("conv1", mc.Conv2d(c, 6, 3, padding=1, rng=seed)),
        ("relu1", mc.ReLU()),
        ("pool1", mc.MaxPool2d(2)),
        ("conv2", mc.Conv2d(6, 8, 3, padding=1, rng=seed + 1)),
        ("relu2", mc.ReLU()),
        ("gap", mc.GlobalAvgPool2d()),
        ("fc", mc.Linear(8, classes, rng=seed + 2)),
    ])


def fc_model(c=3, classes=4, hw=(12, 10), seed=0):
    h, w = hw[0] // 2, hw[1] // 2
    return mc.Sequential([
        ("conv1", mc.Conv2d(c, 6, 3, padding=1, rng=seed)),
        ("relu1", mc.ReLU()),
        ("pool1", mc.MaxPool2d(2)),
        ("flatten", mc.Flatten()),
        ("fc1", mc.Linear(6 * h * w, 10, rng=seed + 1)),
        ("relu2", mc.ReLU()),
        ("fc2", mc.Linear(10, classes, rng=seed + 2)),
    ])


def panel_axes(fig):
    """The grid's panels, without the colorbar axes (which have a colorbar parent)."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


# --------------------------------------------------------------------------
# Arrays to pixels
# --------------------------------------------------------------------------


def test_import_minicam_does_not_import_matplotlib():
    code = "import sys, minicam, minicam.viz; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_display_image_layouts(rng):
    rgb = rng.random((3, 5, 7))
    out = viz.to_display_image(rgb)
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out[..., 1], rgb[1])
    grey = rng.random((1, 5, 7))
    np.testing.assert_array_equal(viz.to_display_image(grey), grey[0])
    assert viz.to_display_image(grey[0]).shape == (5, 7)


@pytest.mark.parametrize(
    "image, exc, words",
    [
        (np.zeros((5, 7, 3)), ValueError, "1 or 3 channels"),
        (np.zeros((2, 5, 7)), ValueError, "2 channels"),
        (np.full((3, 4, 4), 1.5), ValueError, "[0, 1]"),
        (np.full((3, 4, 4), -0.1), ValueError, "[0, 1]"),
        (np.zeros((3, 4, 4), dtype=np.uint8), TypeError, "floating-point"),
        (np.zeros((1, 3, 4, 4)), ValueError, "2 or 3-D"),
        ([[0.0]], TypeError, "numpy.ndarray"),
    ],
)
def test_to_display_image_rejects(image, exc, words):
    with pytest.raises(exc, match="image") as info:
        viz.to_display_image(image)
    assert words in str(info.value)


def test_signed_to_rgb_zero_is_mid_grey_and_scale_is_symmetric(rng):
    g = rng.standard_normal((3, 6, 5))
    g[1, 2, 3] = 0.0
    out = viz.signed_to_rgb(g)
    assert out.shape == (6, 5, 3)
    assert out[2, 3, 1] == 0.5
    # Symmetric: negating the map mirrors the display around grey.
    np.testing.assert_allclose(viz.signed_to_rgb(-g), 1.0 - out, atol=1e-15)
    # Not clipped: the largest |g| just reaches 0 or 1, every other value is strictly inside.
    assert out.min() >= 0.0 and out.max() <= 1.0
    c, i, j = np.unravel_index(np.argmax(np.abs(g)), g.shape)
    assert out[i, j, c] in (0.0, 1.0)
    assert np.sum((out == 0.0) | (out == 1.0)) == 1
    # Linear in g: display differences are proportional to value differences.
    np.testing.assert_allclose((out - 0.5) * 2 * np.abs(g).max(), np.transpose(g, (1, 2, 0)), atol=1e-12)


def test_signed_to_rgb_flat_map_is_grey_not_nan():
    out = viz.signed_to_rgb(np.zeros((1, 4, 4)))
    assert np.all(out == 0.5)


def test_prepare_map_upsamples_with_minicam_then_normalizes(rng):
    cam = rng.standard_normal((3, 4))
    shown, (lo, hi) = viz.prepare_map(cam, (9, 10))
    assert shown.shape == (9, 10)
    up = mc.upsample(cam[None], (9, 10), interpolation="bilinear")
    np.testing.assert_allclose(shown, mc.normalize(up)[0], atol=1e-15)
    assert (lo, hi) == (up.min(), up.max())
    assert shown.min() == 0.0 and shown.max() == 1.0
    near, _ = viz.prepare_map(cam, (9, 10), interpolation="nearest")
    np.testing.assert_allclose(near, mc.normalize(mc.upsample(cam[None], (9, 10), interpolation="nearest"))[0])
    same, _ = viz.prepare_map(cam, (3, 4))
    np.testing.assert_allclose(same, mc.normalize(cam[None])[0])


def test_prepare_map_rejects_a_map_larger_than_the_image(rng):
    with pytest.raises(ValueError, match=r"cam of shape \(3, 12\) is larger than the image \(9, 10\)"):
        viz.prepare_map(rng.standard_normal((3, 12)), (9, 10))
    with pytest.raises(ValueError, match="cam must be 2-D"):
        viz.prepare_map(rng.standard_normal((1, 3, 4)), (9, 10))


# --------------------------------------------------------------------------
# Panels
# --------------------------------------------------------------------------


def colorbars(fig):
    return [a for a in fig.axes if hasattr(a, "_colorbar")]


def tick_values(cbar_ax):
    return [float(t) for t in cbar_ax._colorbar.get_ticks()]


def test_overlay_of_an_unsigned_map_colours_raw_values_min_to_max(rng):
    image = rng.random((3, 16, 12))
    cam = rng.random((4, 3)) + 0.5                       # no value < 0: unsigned
    fig = viz.overlay(image, cam, alpha=0.4)
    ax = panel_axes(fig)[0]
    base, top = ax.images
    # Under the map the image is grey (its luminance), so the map's colours do not mix with the image's.
    np.testing.assert_allclose(base.get_array(), image.transpose(1, 2, 0) @ [0.299, 0.587, 0.114])
    assert base.get_cmap().name == "gray"
    fig_colour = viz.overlay(image, cam, base="colour")
    assert panel_axes(fig_colour)[0].images[0].get_array().shape == (16, 12, 3)
    with pytest.raises(ValueError, match="base must be 'grey' or 'colour', got 'gray'"):
        viz.overlay(image, cam, base="gray")
    up = mc.upsample(cam[None], (16, 12))[0]
    # Raw values are drawn; the colour scale runs from their min to their max: the picture of normalize().
    np.testing.assert_array_equal(np.asarray(top.get_array()), up)
    assert top.get_clim() == (up.min(), up.max())
    np.testing.assert_allclose(top.norm(up), mc.normalize(up[None])[0], atol=1e-12)
    assert top.get_alpha() == 0.4
    assert top.get_cmap().name == viz.DEFAULT_CMAP == "inferno"   # perceptually uniform, not jet
    # One colour bar, in raw units: its ends are the raw min and max, with round numbers between.
    (cbar,) = colorbars(fig)
    ticks = tick_values(cbar)
    assert ticks[0] == up.min() and ticks[-1] == up.max() and len(ticks) >= 3
    labels = [t.get_text() for t in cbar.get_yticklabels()]
    assert labels[0] == f"{up.min():.3g}" and labels[-1] == f"{up.max():.3g}"
    assert "raw" in cbar.get_ylabel()


def test_overlay_of_a_signed_map_is_centred_at_zero_never_min_max_scaled(rng):
    # The "CAM of an absent class" case: strongly negative with a small positive tail.
    image = rng.random((3, 16, 16))
    cam = -24.0 * rng.random((8, 8))
    cam[0, 0] = 1.5
    fig = viz.overlay(image, cam)
    top = panel_axes(fig)[0].images[1]
    up = mc.upsample(cam[None], (16, 16))[0]
    m = np.abs(up).max()
    assert top.get_clim() == (-m, m)                       # symmetric: 0 sits mid-scale
    assert top.norm(0.0) == 0.5
    assert top.get_cmap().name == viz.SIGNED_CMAP == "RdBu_r"
    # Min-max scaling would paint the largest value (1.5) at the top of the scale; here it is near white.
    assert top.norm(up.max()) < 0.55
    ticks = tick_values(colorbars(fig)[0])
    assert 0.0 in ticks and min(ticks) == pytest.approx(up.min())
    # signed=False forces the min-max scale, an explicit cmap (jet) still works by name
    fig = viz.overlay(image, cam, signed=False, cmap="jet")
    top = panel_axes(fig)[0].images[1]
    assert top.get_clim() == (up.min(), up.max()) and top.get_cmap().name == "jet"
    # a non-negative map can be drawn on the signed scale too
    fig = viz.overlay(image, np.abs(cam), signed=True)
    assert panel_axes(fig)[0].images[1].norm(0.0) == 0.5


def test_colorbar_ticks_do_not_crowd(rng):
    image = rng.random((3, 16, 16))
    for cam in [rng.standard_normal((8, 8)), -24.0 * rng.random((8, 8)) + 0.3, rng.random((8, 8)) * 1e-4]:
        ticks = tick_values(colorbars(viz.overlay(image, cam))[0])
        span = max(ticks) - min(ticks)
        assert np.all(np.diff(ticks) >= 0.14 * span - 1e-12), ticks


def test_overlay_on_a_grey_image_and_into_given_axes(rng):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    out = viz.overlay(rng.random((1, 8, 8)), rng.random((8, 8)), ax=ax, colorbar=False)
    assert out is fig
    assert ax.images[0].get_array().shape == (8, 8)
    assert ax.images[0].get_cmap().name == "gray"
    assert not colorbars(fig)


def test_overlay_of_a_flat_map_says_so(rng):
    fig = viz.overlay(rng.random((3, 8, 8)), np.zeros((2, 2)))
    texts = [t.get_text() for t in panel_axes(fig)[0].texts]
    assert any("flat map" in t for t in texts)
    assert np.all(np.asarray(panel_axes(fig)[0].images[1].get_array()) == 0.0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(alpha=1.5), ValueError, "alpha"),
        (dict(cmap="not-a-colormap"), ValueError, "cmap"),
        (dict(cmap=3), TypeError, "cmap"),
        (dict(ax="axes"), TypeError, "ax must be a matplotlib Axes"),
        (dict(interpolation="cubic"), ValueError, "cubic"),
    ],
)
def test_overlay_rejects_bad_arguments(rng, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        viz.overlay(rng.random((3, 8, 8)), rng.random((4, 4)), **kwargs)


def test_show_signed_rgb_is_centred_and_unclipped(rng):
    g = rng.standard_normal((3, 7, 9))
    fig = viz.show_signed(g)
    drawn = np.asarray(panel_axes(fig)[0].images[0].get_array())
    np.testing.assert_allclose(drawn, viz.signed_to_rgb(g))
    assert drawn.min() >= 0.0 and drawn.max() <= 1.0
    # Its colour bar gives each channel's raw value: -max|g| (black), 0 (grey), +max|g| (white).
    (cbar,) = colorbars(fig)
    m = np.abs(g).max()
    assert tick_values(cbar) == [-m, 0.0, m]
    assert cbar._colorbar.extend == "neither"


@pytest.mark.parametrize("shape", [(1, 7, 9), (7, 9)])
def test_show_signed_one_channel_uses_a_symmetric_diverging_scale(rng, shape):
    g = rng.standard_normal(shape) + 0.5  # asymmetric data: the scale must still be symmetric
    fig = viz.show_signed(g)
    im = panel_axes(fig)[0].images[0]
    m = np.abs(g).max()
    assert im.get_clim() == (-m, m)
    np.testing.assert_array_equal(np.asarray(im.get_array()), g.reshape(7, 9))
    # Zero maps to the colormap's middle (white for RdBu_r).
    assert im.norm(0.0) == 0.5
    assert tick_values(colorbars(fig)[0]) == [-m, 0.0, m]


def test_percentile_scaling_clips_beyond_the_percentile_of_abs_g(rng):
    g = rng.standard_normal((3, 16, 16)) * 0.01
    g[0, 3, 4] = 5.0                                   # one huge gradient would make the rest faint
    s = np.percentile(np.abs(g), 99)
    assert viz.signed_scale(g, 99) == s and viz.signed_scale(g) == 5.0
    out = viz.signed_to_rgb(g, percentile=99)
    np.testing.assert_allclose(out, np.clip(0.5 + np.transpose(g, (1, 2, 0)) / (2 * s), 0, 1))
    assert np.mean(np.abs(out - 0.5) > 0.1) > 0.3      # most pixels visibly off grey, not faint
    assert np.mean(np.abs(viz.signed_to_rgb(g) - 0.5) > 0.1) < 0.01
    assert np.sum(np.isin(out, (0.0, 1.0))) >= 1 and out[3, 4, 0] == 1.0
    fig = viz.show_signed(g, percentile=99)
    (cbar,) = colorbars(fig)
    assert tick_values(cbar) == [-s, 0.0, s]
    assert cbar._colorbar.extend == "both" and "p99" in cbar.get_ylabel()
    # a mostly-zero map falls back to max|g|; an all-zero map stays grey
    sparse = np.zeros((1, 40, 40))              # 1 of 1600 non-zero: the 99th percentile is 0
    sparse[0, 0, 0] = -2.0
    assert viz.signed_scale(sparse, 99) == 2.0
    assert np.all(viz.signed_to_rgb(np.zeros((3, 4, 4)), percentile=99) == 0.5)
    with pytest.raises(ValueError, match=r"percentile must be in \[50\.0, 100\.0\], got 10\.0"):
        viz.signed_to_rgb(g, percentile=10)


def test_show_signed_rejects_bad_channels(rng):
    with pytest.raises(ValueError, match=r"grad must have 1 or 3 channels.*\(2, 4, 4\)"):
        viz.show_signed(rng.standard_normal((2, 4, 4)))


def test_draw_boxes_follow_pixel_edges():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    (rect,) = viz.draw_boxes(ax, np.array([2, 3, 7, 5]))
    assert rect.get_xy() == (1.5, 2.5)
    assert (rect.get_width(), rect.get_height()) == (5, 2)
    with pytest.raises(ValueError, match="boxes must have shape"):
        viz.draw_boxes(ax, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="x1 > x0"):
        viz.draw_boxes(ax, [5, 0, 2, 4])
    with pytest.raises(ValueError, match="labels must have one entry per box"):
        viz.draw_boxes(ax, [[0, 0, 2, 2], [3, 3, 5, 5]], labels=["a"])


def test_mark_peak_returns_the_maximum_of_the_upsampled_map():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    cam = np.zeros((4, 4))
    cam[3, 0] = 1.0
    assert viz.mark_peak(ax, cam) == (3, 0)
    row, col = viz.mark_peak(ax, cam, size=(16, 16))
    assert row >= 12 and col <= 3


# --------------------------------------------------------------------------
# The explanation grid
# --------------------------------------------------------------------------


def test_grid_on_a_gap_model_draws_every_column(rng, tmp_path):
    model = gap_model()
    images = rng.random((2, 3, 12, 10))
    fig = viz.explanation_grid(model, images, class_idx=[1, 3], class_names=["a", "b", "c", "d"])
    panels = panel_axes(fig)
    assert len(panels) == 2 * len(viz.COLUMNS)
    rows = fig.minicam_maps
    assert [r["class_idx"] for r in rows] == [1, 3]
    assert rows[0]["layer"] == "relu2"
    assert rows[0]["cam"].shape == (6, 5)
    np.testing.assert_allclose(rows[1]["grad-cam"], mc.grad_cam(model, images[1:], 3)[0])
    np.testing.assert_allclose(rows[1]["cam"], mc.cam(model, images[1:], 3)[0])
    # One batch with a class per row gives what each image explained alone gives.
    for i, c in enumerate([1, 3]):
        x = images[i : i + 1]
        np.testing.assert_allclose(rows[i]["counterfactual"], mc.grad_cam(model, x, c, counterfactual=True)[0], atol=1e-15)
        np.testing.assert_allclose(rows[i]["guided-backprop"], mc.guided_backprop(model, x, c)[0], atol=1e-15)
        np.testing.assert_allclose(rows[i]["guided-grad-cam"], mc.guided_grad_cam(model, x, c)[0], atol=1e-15)
    assert rows[0]["guided-grad-cam"].shape == (3, 12, 10)
    titles = [ax.get_title() for ax in panels]
    assert titles[1] == "CAM → b\nsigned, 6×5 up"
    assert titles[8] == "Grad-CAM → d\nReLU, 6×5 up"
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_grid_on_an_fc_model_marks_cam_not_applicable(rng):
    model = fc_model()
    fig = viz.explanation_grid(model, rng.random((1, 3, 12, 10)))
    assert fig.minicam_maps[0]["cam"] is None
    # the default layer is relu1, the last 4-D map no pooling layer made (not pool1)
    assert fig.minicam_maps[0]["grad-cam"].shape == (12, 10)
    cam_panel = panel_axes(fig)[1]
    assert any("n/a: no GAP→Linear" in t.get_text() for t in cam_panel.texts)


def test_grid_default_class_is_the_prediction_and_one_image_works(rng):
    model = gap_model(c=1, classes=3)
    image = rng.random((1, 9, 9))
    fig = viz.explanation_grid(model, image, columns=("image", "grad-cam"))
    row = fig.minicam_maps[0]
    assert row["class_idx"] == row["predicted"] == int(np.argmax(model.forward(image[None])))
    assert len(panel_axes(fig)) == 2


def test_grid_titles_show_true_label_prediction_and_explained_class(rng):
    model = gap_model()
    images = rng.random((2, 3, 8, 8))
    predicted = np.argmax(model.forward(images), axis=1)
    other = (predicted + 1) % 4
    fig = viz.explanation_grid(model, images, class_idx=other, class_names=list("abcd"), labels=[2, 0],
                               columns=("image",))
    first = panel_axes(fig)[0].get_title()
    assert first.startswith(f"true: c\npred: {'abcd'[predicted[0]]} (p=")
    assert f"explaining: {'abcd'[other[0]]}" in first
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        viz.explanation_grid(model, images, labels=[1])


def test_grid_draws_boxes_and_peaks(rng):
    model = gap_model()
    images = rng.random((1, 3, 12, 12))
    fig = viz.explanation_grid(
        model, images, boxes=np.array([[[1, 1, 4, 4], [6, 6, 10, 11]]]), box_labels=[["x", "y"]],
        columns=("image", "grad-cam"), show_peak=True,
    )
    image_ax, cam_ax = panel_axes(fig)
    assert len(image_ax.patches) == 2 and len(cam_ax.patches) == 2
    assert [t.get_text() for t in image_ax.texts] == ["x", "y"]
    peak = fig.minicam_maps[0]["peaks"]["grad-cam"]
    shown, _ = viz.prepare_map(fig.minicam_maps[0]["grad-cam"], (12, 12))
    assert shown[peak] == shown.max()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(class_idx=[0]), ValueError, r"class_idx must hold one class per sample \(N=2\), got shape \(1,\)"),
        (dict(class_idx=4), ValueError, r"class_idx must be in \[0, 4\).*got 4"),
        (dict(class_idx=-1), ValueError, r"class_idx must be in \[0, 4\).*got -1"),
        (dict(class_idx=1.0), TypeError, "class_idx"),
        (dict(class_names=["a", "b"]), ValueError, r"class_names must have one name per class \(4\), got 2"),
        (dict(columns=("image", "gradcam")), ValueError, "columns must be"),
        (dict(columns="image"), TypeError, "columns must be a sequence"),
        (dict(layer="conv9"), ValueError, "conv9"),
        (dict(boxes=np.zeros((3, 4))), ValueError, "boxes must have shape"),
    ],
)
def test_grid_rejects_bad_arguments(rng, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        viz.explanation_grid(gap_model(), rng.random((2, 3, 8, 8)), **kwargs)


def test_grid_rejects_images_outside_unit_range(rng):
    with pytest.raises(ValueError, match=r"image values must be in \[0, 1\]"):
        viz.explanation_grid(gap_model(), rng.standard_normal((1, 3, 8, 8)) + 3)


def dropout_head_model(seed=0):
    return mc.Sequential([
        ("conv1", mc.Conv2d(3, 6, 3, padding=1, rng=seed)),
        ("bn1", mc.BatchNorm2d(6)),
        ("relu1", mc.ReLU()),
        ("gap", mc.GlobalAvgPool2d()),
        ("drop", mc.Dropout(0.5, rng=seed)),
        ("fc", mc.Linear(6, 4, rng=seed + 1)),
    ])


def test_grid_with_a_training_mode_dropout_head_marks_cam_not_applicable(rng):
    # Regression: the grid used its own "GAP -> Linear head" rule, which skipped every Dropout,
    # then called mc.cam, which (rightly) refuses a training-mode Dropout: the grid raised.
    model = dropout_head_model().train()
    images = rng.random((2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"drop \(Dropout, training\)"):
        mc.cam(model, images, 0)
    fig = viz.explanation_grid(model, images, class_idx=[0, 1], columns=("image", "cam", "grad-cam"))
    assert [row["cam"] for row in fig.minicam_maps] == [None, None]
    # In eval mode the Dropout is the identity: CAM applies, and the grid shows mc.cam's map.
    model.eval()
    fig = viz.explanation_grid(model, images, class_idx=[0, 1], columns=("image", "cam"))
    np.testing.assert_array_equal(fig.minicam_maps[1]["cam"], mc.cam(model, images[1:], 1)[0])


def test_grid_leaves_a_training_mode_model_as_it_found_it(rng):
    # Regression: explain_batch ran a bare model.forward outside the explanation guard, so
    # drawing a grid moved BatchNorm's running statistics (and replaced caches and outputs).
    model = dropout_head_model()
    model["drop"].p = 0.0  # deterministic, still training mode
    images = rng.random((2, 3, 8, 8))
    twin = copy.deepcopy(model)
    scores = model.forward(images[:1])
    twin.forward(images[:1])
    viz.explanation_grid(model, images)
    for (key, value), (_, ref) in zip(model.named_buffers(), twin.named_buffers()):
        np.testing.assert_array_equal(value, ref, err_msg=key)
    assert model.training
    # the caches are still those of the user's forward: backward gives the same gradient as the twin's
    dscores = rng.standard_normal(scores.shape)
    np.testing.assert_array_equal(model.backward(dscores), twin.backward(dscores))


# --------------------------------------------------------------------------
# Classroom-readable figures: colour bars, title sizes, resolution, export
# --------------------------------------------------------------------------


def test_grid_has_a_raw_colour_bar_on_every_map_panel_and_readable_titles(rng):
    model = gap_model()
    fig = viz.explanation_grid(model, rng.random((2, 3, 12, 10)), suptitle="s")
    panels = panel_axes(fig)
    maps = [ax for i, ax in enumerate(panels) if viz.COLUMNS[i % len(viz.COLUMNS)] != "image"]
    assert len(colorbars(fig)) == len(maps) == 2 * (len(viz.COLUMNS) - 1)
    assert fig.dpi >= 100
    for ax in panels:
        assert ax.title.get_fontsize() >= 9, ax.get_title()
    # CAM (signed) is centred at 0; Grad-CAM (ReLU) uses the uniform colormap; guided columns clip at p99.
    cam_im, gc_im = panels[1].images[1], panels[2].images[1]
    assert cam_im.norm(0.0) == 0.5 and cam_im.get_cmap().name == viz.SIGNED_CMAP
    assert gc_im.get_cmap().name == viz.DEFAULT_CMAP
    gb = fig.minicam_maps[0]["guided-backprop"]
    np.testing.assert_allclose(np.asarray(panels[3].images[0].get_array()),
                               viz.signed_to_rgb(gb, percentile=viz.GUIDED_PERCENTILE))
    assert viz.GUIDED_PERCENTILE == 99.0


def test_primitives_titles_and_figure_dpi(rng):
    fig = viz.overlay(rng.random((3, 8, 8)), rng.random((4, 4)), title="t")
    assert panel_axes(fig)[0].title.get_fontsize() >= 9 and fig.dpi >= 100
    fig = viz.show_signed(rng.standard_normal((3, 8, 8)), title="t")
    assert panel_axes(fig)[0].title.get_fontsize() >= 9
    fig, _ = viz.figure(1, 2)
    assert fig.dpi >= 100


@pytest.mark.parametrize("preset, width_px", [("screen", 400), ("slide", 1920), ("paper", 1950)])
def test_save_presets_set_size_and_resolution_and_leave_the_figure_alone(rng, tmp_path, preset, width_px):
    from PIL import Image

    fig = viz.overlay(rng.random((3, 8, 8)), rng.random((4, 4)))
    fig.set_size_inches(4.0, 3.0)
    path = viz.save(fig, tmp_path / f"{preset}.png", preset=preset)
    with Image.open(path) as img:
        w, h = img.size
    assert abs(w - width_px) <= 2 and abs(h / w - 0.75) < 0.01
    assert tuple(fig.get_size_inches()) == (4.0, 3.0)
    assert viz.PRESETS[preset]["dpi"] >= 100


def test_save_rejects_bad_arguments(rng, tmp_path):
    fig = viz.overlay(rng.random((3, 8, 8)), rng.random((4, 4)))
    with pytest.raises(ValueError, match=r"preset must be one of \['paper', 'screen', 'slide'\], got 'poster'"):
        viz.save(fig, tmp_path / "a.png", preset="poster")
    with pytest.raises(ValueError, match="dpi must be an int in \\[100, 600\\], got 72"):
        viz.save(fig, tmp_path / "a.png", dpi=72)
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure, got str"):
        viz.save("fig", tmp_path / "a.png")
