"""minicam.diagnose: attacks (gradient, budget, untouched model and input), failure modes, bias, concepts.

Studies on the bundled models run on small held-out sets; the thresholds hold the direction of each
effect with a margin below what was measured (numbers in each test's comment).
"""

import numpy as np
import pytest

import minicam as mc
import minicam.diagnose as dg
from minicam.datasets.biased import biased_shapes
from minicam.gradcheck import numerical_gradient, rel_error

from explain_nets import INPUT, gap_net


def _state(model):
    """Everything an attack could change: mode, parameters, buffers, gradients, cached outputs."""
    return (model.training, {k: v.copy() for k, v in model.state_dict().items()},
            [(n, g.copy()) for n, g in model.named_gradients()],
            {k: v.copy() for k, v in model.outputs.items()})


def _same_state(a, b):
    assert a[0] == b[0]
    assert a[1].keys() == b[1].keys() and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
    assert len(a[2]) == len(b[2]) and all(n1 == n2 and np.array_equal(g1, g2) for (n1, g1), (n2, g2) in zip(a[2], b[2]))
    assert a[3].keys() == b[3].keys() and all(np.array_equal(a[3][k], b[3][k]) for k in a[3])


@pytest.fixture(scope="module")
def shapes_gap():
    return mc.zoo.pretrained("shapes-gap")


@pytest.fixture(scope="module")
def heldout():
    return mc.datasets.shapes(60, seed=123)


def _images(rng, n=3):
    return rng.uniform(0.05, 0.95, size=(n, *INPUT))


# -- attacks --------------------------------------------------------------------------------------


def test_loss_input_gradient_matches_central_differences(rng):
    model = gap_net(seed=3)
    x = _images(rng)
    labels = np.array([0, 2, 4])
    loss, dx = dg.loss_input_gradient(model, x, labels)
    num = numerical_gradient(lambda z: mc.softmax_cross_entropy(model.forward(z), labels)[0], x, 1.0)
    assert loss == pytest.approx(mc.softmax_cross_entropy(model.forward(x), labels)[0])
    assert rel_error(dx, num) < 1e-7  # measured ~1e-10


def test_fgsm_is_the_signed_gradient_step_clipped(rng):
    model = gap_net(seed=3)
    x = _images(rng)
    x[0, 0, 0, 0], x[1, 1, 2, 3] = 0.0, 1.0  # pixels at the border of [0, 1]
    labels = [1, 1, 3]
    _, dx = dg.loss_input_gradient(model, x, labels)
    adv = dg.fgsm(model, x, labels, 0.1)
    assert np.array_equal(adv, np.clip(x + 0.1 * np.sign(dx), 0, 1))
    assert adv.min() >= 0 and adv.max() <= 1 and np.abs(adv - x).max() <= 0.1 + 1e-15
    assert np.array_equal(dg.fgsm(model, x, labels, 0.0), x)


def test_fgsm_raises_the_loss(rng):
    model = gap_net(seed=3)
    x = _images(rng)
    labels = np.array([0, 2, 4])
    before, _ = dg.loss_input_gradient(model, x, labels)
    after, _ = dg.loss_input_gradient(model, dg.fgsm(model, x, labels, 0.01), labels)
    assert after > before


def test_pgd_stays_in_the_ball_and_beats_fgsm(shapes_gap, heldout):
    x, y = heldout.images[:20], heldout.labels[:20]
    eps = 2 / 255
    adv = dg.pgd(shapes_gap, x, y, eps, step=eps / 4, n_steps=8, rng=0)
    assert np.abs(adv - x).max() <= eps + 1e-12 and adv.min() >= 0 and adv.max() <= 1
    loss_pgd, _ = dg.loss_input_gradient(shapes_gap, adv, y)
    loss_fgsm, _ = dg.loss_input_gradient(shapes_gap, dg.fgsm(shapes_gap, x, y, eps), y)
    assert loss_pgd > loss_fgsm  # measured 2.1 vs 1.1
    # no rng: deterministic, and one step of size eps is FGSM
    assert np.array_equal(dg.pgd(shapes_gap, x, y, eps, step=eps, n_steps=1), dg.fgsm(shapes_gap, x, y, eps))


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attacks_leave_model_and_input_untouched(rng, attack):
    model = gap_net(seed=3, batchnorm=True, dropout=False).train()  # train mode: BatchNorm would update
    x = _images(rng)
    model.forward(x[:1])
    x_copy = x.copy()
    x.setflags(write=False)
    before = _state(model)
    if attack == "fgsm":
        dg.fgsm(model, x, [0, 1, 2], 0.05)
    else:
        dg.pgd(model, x, [0, 1, 2], 0.05, step=0.02, n_steps=3, rng=1)
    _same_state(before, _state(model))
    assert np.array_equal(x, x_copy)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps"), ({"eps": float("nan")}, "eps"), ({"eps": float("inf")}, "eps"),
    ({"step": 0.0}, "step"), ({"step": -1.0}, "step"), ({"n_steps": 0}, "n_steps"),
])
def test_attacks_refuse_bad_budgets(rng, kwargs, match):
    model, x = gap_net(seed=3), _images(rng)
    args = {"eps": 0.1, "step": 0.01, "n_steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        dg.pgd(model, x, 0, **args)
    if "eps" in kwargs:
        with pytest.raises(ValueError, match="eps"):
            dg.fgsm(model, x, 0, kwargs["eps"])


def test_attacks_refuse_bad_types_and_ranges(rng):
    model, x = gap_net(seed=3), _images(rng)
    with pytest.raises(TypeError, match="eps"):
        dg.fgsm(model, x, 0, "0.1")
    with pytest.raises(TypeError, match="n_steps"):
        dg.pgd(model, x, 0, 0.1, 0.01, 2.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dg.fgsm(model, x * 3, 0, 0.1)
    with pytest.raises(ValueError, match="class_idx"):
        dg.fgsm(model, x, [0, 1], 0.1)


def test_attack_study_on_the_bundled_model(shapes_gap, heldout):
    rows = dg.attack_study(shapes_gap, heldout, [0.0, 4 / 255], "fgsm")
    assert rows[0]["success"] == 0.0
    strong = rows[1]
    # measured on shapes(300, seed=123): success 81%; true-class pointing 0.90 clean -> 0.54 attacked
    assert strong["success"] > 0.5
    assert strong["pointing_adv"] < strong["pointing_clean"]
    assert strong["pointing_adv"] > 0.2  # still far above a random peak (~0.1 of the image is object)
    with pytest.raises(ValueError, match="budgets"):
        dg.attack_study(shapes_gap, heldout, [-1.0])
    with pytest.raises(ValueError, match="attack"):
        dg.attack_study(shapes_gap, heldout, [0.1], attack="cw")


# -- failure modes --------------------------------------------------------------------------------


def test_failure_summary_on_the_bundled_model(shapes_gap):
    ds = mc.datasets.shapes(400, seed=123)
    out = dg.failure_summary(shapes_gap, ds)
    table = {row["group"]: row for row in out["table"]}
    wrong = out["wrong"]
    assert np.array_equal(wrong, np.flatnonzero(out["pred"] != ds.labels)) and 3 <= len(wrong) <= 30
    assert out["maps"]["predicted"].shape == (len(wrong), 32, 32)
    # measured on shapes(1000, seed=123), 28 wrong: pointing 0.68 (wrong, predicted class) vs 0.91 (right);
    # counterfactual 0.04
    assert table["wrong: predicted class"]["pointing"] < table["right: predicted class"]["pointing"]
    assert table["right: predicted class"]["pointing"] > 0.8
    assert table["wrong: counterfactual"]["pointing"] < table["wrong: predicted class"]["pointing"]
    with pytest.raises(ValueError, match="one object"):
        dg.failure_summary(shapes_gap, mc.datasets.scenes(2, seed=0))


# -- dataset bias ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bias_rows():
    models = {name: dg.bias_model(name) for name in dg.BIAS_MODELS}
    return {row["model"]: row for row in dg.bias_study(models, n=120)}


def test_biased_model_learned_the_cue_and_the_balanced_one_the_object(bias_rows):
    biased, balanced = bias_rows["biased"], bias_rows["balanced"]
    # measured on 300 images: biased 1.00 on biased data, 0.29 decorrelated; balanced 0.83 / 0.82
    assert biased["acc_biased"] > 0.95 and biased["acc_decorrelated"] < 0.45
    assert balanced["acc_decorrelated"] > 0.7
    assert abs(balanced["acc_biased"] - balanced["acc_decorrelated"]) < 0.1
    # measured: biased cue energy 0.40, object 0.04, peak on cue 0.98; balanced cue 0.03, object 0.39, peak on object 0.74
    assert biased["cue_energy"] > 3 * biased["object_energy"] and biased["peak_on_cue"] > 0.8
    assert balanced["object_energy"] > 3 * balanced["cue_energy"] and balanced["peak_on_object"] > 0.5


def test_cue_region_grows_the_square_without_the_object():
    ds = biased_shapes(10, 1)
    region = dg.cue_region(ds, 4)
    assert (region >= ds.cue_masks & ~ds.masks).all() and not (region & ds.masks).any()
    assert np.array_equal(dg.cue_region(ds, 0), ds.cue_masks)
    assert (region.sum(axis=(1, 2)) <= 13 * 13).all()
    with pytest.raises(TypeError, match="BiasedDataset"):
        dg.cue_vs_object(gap_net(), mc.datasets.shapes(2, seed=0))


def test_train_bias_model_is_a_short_recipe():
    model = dg.train_bias_model(1.0, widths=(4, 4), n_train=64, epochs=1, batch_size=32)
    assert not model.training and model["conv1"].params["W"].dtype == np.float32
    with pytest.raises(ValueError, match="bias"):
        dg.train_bias_model(2.0, n_train=8, epochs=1)
    with pytest.raises(ValueError, match="name"):
        dg.bias_model("fair")


# -- textual explanations -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(shapes_gap):
    return dg.channel_concepts(shapes_gap, mc.datasets.shapes(120, seed=7))


def test_channel_concepts_name_channels_by_the_shapes(table):
    assert table.layer == "relu5" and table.iou.shape == (64, 5) and table.concepts[-1] == "background"
    assert ((table.iou >= 0) & (table.iou <= 1)).all()
    # measured (200 images, seed 7): every class names some channels; best IoUs 0.19-0.47, median 0.33
    assert set(table.names) >= {"circle", "square", "triangle", "cross"}
    assert np.median(table.best_iou) > 0.2


def test_contributions_sum_to_the_mean_of_the_signed_map(shapes_gap, heldout):
    x = heldout.images[:4]
    contrib = dg.channel_contributions(shapes_gap, x, heldout.labels[:4])
    signed = mc.grad_cam(shapes_gap, x, heldout.labels[:4], relu=False)
    np.testing.assert_allclose(contrib.sum(axis=1), signed.mean(axis=(1, 2)), rtol=1e-12, atol=1e-15)
    scores = shapes_gap.forward(x)
    b = shapes_gap["fc"].params["b"][heldout.labels[:4]]
    np.testing.assert_allclose(contrib.sum(axis=1) * 64, scores[np.arange(4), heldout.labels[:4]] - b, rtol=1e-10)


def test_explain_text_names_the_class_and_its_channels(shapes_gap, heldout, table):
    right = np.flatnonzero(mc.train.predict(shapes_gap, heldout.images) == heldout.labels)[:12]
    agree = 0
    for i in right:
        sentence, rows = dg.explain_text(shapes_gap, heldout.images[i], concepts=table, k=3)
        name = heldout.class_names[heldout.labels[i]]
        assert sentence.startswith(f"predicted {name} (logit ")
        pos = [r for r in rows if r["side"] == "for"]
        assert all(r["contribution"] > 0 for r in pos) and all(r["contribution"] < 0 for r in rows if r["side"] == "against")
        assert [r["contribution"] for r in pos] == sorted((r["contribution"] for r in pos), reverse=True)
        agree += any(r["concept"] == name for r in pos)
    # measured: on 12 of 12 correctly classified images a top-3 channel is named after the class
    assert agree >= 9


def test_explain_text_refuses_bad_arguments(shapes_gap, heldout, table):
    x = heldout.images[:1]
    with pytest.raises(ValueError, match="k must be in"):
        dg.explain_text(shapes_gap, x, concepts=table, k=65)
    with pytest.raises(TypeError, match="k must be an int"):
        dg.explain_text(shapes_gap, x, concepts=table, k=2.0)
    small = dg.ConceptTable("relu5", table.concepts, table.iou[:10])
    with pytest.raises(ValueError, match="64 channels"):
        dg.explain_text(shapes_gap, x, concepts=small)
    with pytest.raises(ValueError, match="4-D"):
        dg.explain_text(shapes_gap, x, concepts=table, layer="fc")
    with pytest.raises(TypeError, match="ConceptTable"):
        dg.explain_text(shapes_gap, x, concepts=table.iou)
    with pytest.raises(ValueError, match="one image"):
        dg.explain_text(shapes_gap, heldout.images[:2], concepts=table)
    with pytest.raises(ValueError, match="quantile"):
        dg.channel_concepts(shapes_gap, heldout, quantile=1.0)


def test_cli_explain_text_prints_the_sentence(tmp_path, capsys):
    from PIL import Image

    from minicam.__main__ import main

    ds = mc.datasets.shapes(1, seed=11)  # a circle
    png = tmp_path / "shape.png"
    Image.fromarray((ds.images[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(png)
    assert main(["explain", str(png), "--model", "shapes-gap", "--method", "grad-cam", "--text",
                 "--out", str(tmp_path / "out.png")]) == 0
    out = capsys.readouterr().out
    assert "predicted circle (logit" in out and "for: channel" in out and "against:" in out
    assert (tmp_path / "out.png").is_file()


# -- Grad-CAM at every layer (minicam.viz.layers) -------------------------------------------------


def test_layer_sweep_maps_and_figure(shapes_gap, heldout):
    from minicam.viz.layers import layer_sweep, sweep_layers, sweep_maps

    x = heldout.images[:3]
    assert sweep_layers(shapes_gap, x.shape) == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    maps = sweep_maps(shapes_gap, x, heldout.labels[:3])
    assert [m.shape for m in maps.values()] == [(3, 16, 16)] + [(3, 8, 8)] * 4
    np.testing.assert_array_equal(maps["relu5"], mc.grad_cam(shapes_gap, x, heldout.labels[:3]))
    fig = layer_sweep(shapes_gap, x[0], class_names=heldout.class_names, mask=heldout.masks[0])
    assert len(fig.axes) == 2 * 6 + 2 * 5  # two rows of panels + one colour bar per map panel
    with pytest.raises(ValueError, match="4-D"):
        sweep_maps(shapes_gap, x, 0, layers=["gap"])
    with pytest.raises(ValueError, match="one image"):
        layer_sweep(shapes_gap, x)
