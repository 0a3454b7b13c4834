"""Reference architectures and the bundled trained models (loaded and evaluated, never retrained)."""

import numpy as np
import pytest

import minicam as mc
from minicam import datasets, io, recipes, zoo

BARS = {"shapes-gap": 0.97, "shapes-fc": 0.97, "digits-gap": 0.90, "shapes-embed": 0.95}  # shapes-embed: Recall@1


# ----------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------


def test_gap_net_layout():
    model = zoo.gap_net(rng=0)
    assert model.names == [
        "conv1", "pool1", "bn1", "relu1",
        "conv2", "pool2", "bn2", "relu2",
        "conv3", "bn3", "relu3",
        "conv4", "bn4", "relu4",
        "conv5", "bn5", "relu5",
        "gap", "fc",
    ]
    shapes = dict(model.output_shapes((2, 3, 32, 32)))
    assert shapes["relu5"] == (2, 64, 8, 8)  # the feature map: 8x8 on 32x32 inputs
    assert shapes["fc"] == (2, 4)
    # relu5 is the last 4-D output: the default layer of the CAM methods.
    four_d = [name for name, shape in model.output_shapes((2, 3, 32, 32)) if len(shape) == 4]
    assert four_d[-1] == "relu5"
    assert isinstance(model["gap"], mc.GlobalAvgPool2d) and isinstance(model["fc"], mc.Linear)


def test_fc_net_layout():
    model = zoo.fc_net(rng=0)
    assert model.names[-4:] == ["flatten", "fc1", "relu_fc1", "fc2"]
    assert model.names[:-4] == zoo.gap_net(rng=0).names[:-2]  # the same blocks
    assert model["fc1"].params["W"].shape == (64, 64 * 8 * 8)
    assert dict(model.output_shapes((1, 3, 32, 32)))["relu5"] == (1, 64, 8, 8)
    rect = zoo.fc_net(in_channels=1, num_classes=10, input_size=(32, 24), rng=0)
    assert rect.forward(np.zeros((2, 1, 32, 24))).shape == (2, 10)


def test_architecture_options():
    small = zoo.gap_net(in_channels=1, num_classes=10, widths=(4, 6), batch_norm=False, rng=0)
    assert small.names == ["conv1", "pool1", "relu1", "conv2", "relu2", "gap", "fc"]
    assert dict(small.output_shapes((1, 1, 32, 32)))["relu2"] == (1, 6, 16, 16)
    one = zoo.gap_net(widths=(5,), rng=0)  # a single block has no pool
    assert one.names == ["conv1", "bn1", "relu1", "gap", "fc"]
    three = zoo.gap_net(widths=(4, 4, 4), num_pools=1, rng=0)
    assert dict(three.output_shapes((1, 3, 32, 32)))["relu3"] == (1, 4, 16, 16)


def test_seeded_and_typed():
    a, b, c = zoo.gap_net(rng=3).state_dict(), zoo.gap_net(rng=3).state_dict(), zoo.gap_net(rng=4).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.W"], c["conv1.W"])
    f32 = zoo.fc_net(rng=0, dtype=np.float32)
    assert {v.dtype for v in f32.state_dict().values()} == {np.dtype(np.float32)}


def test_initialisation_scales():
    # He-normal convolutions and hidden layer (std sqrt(2 / fan_in)); the
    # output layer LeCun-normal (std 1 / sqrt(fan_in)): no ReLU follows it.
    model = zoo.fc_net(rng=0)
    for name, fan_in, gain in (("conv2", 16 * 9, 2.0), ("conv5", 32 * 9, 2.0), ("fc1", 64 * 64, 2.0), ("fc2", 64, 1.0)):
        std = model[name].params["W"].std()
        assert abs(std - np.sqrt(gain / fan_in)) < 0.1 * np.sqrt(gain / fan_in), name
    assert all(not np.any(model[n].params["b"]) for n in ("conv1", "fc1", "fc2"))


def test_bad_architecture_arguments():
    with pytest.raises(ValueError, match="widths must name at least one block"):
        zoo.gap_net(widths=())
    with pytest.raises(ValueError, match=r"widths\[1\] must be >= 1, got 0"):
        zoo.gap_net(widths=(4, 0))
    with pytest.raises(TypeError, match="widths"):
        zoo.gap_net(widths=16)
    with pytest.raises(ValueError, match="num_pools must be less than the number of blocks"):
        zoo.gap_net(widths=(4, 4), num_pools=2)
    with pytest.raises(TypeError, match="batch_norm"):
        zoo.fc_net(batch_norm="yes")
    with pytest.raises(ValueError, match="input_size .* too small"):
        zoo.fc_net(input_size=3)
    with pytest.raises(ValueError, match="in_channels"):
        zoo.gap_net(in_channels=0)


# ----------------------------------------------------------------------------
# Bundled models
# ----------------------------------------------------------------------------


def test_unknown_pretrained_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"\['digits-gap', 'shapes-embed', 'shapes-fc', 'shapes-gap'\], got 'imagenet'"):
        zoo.pretrained("imagenet")


@pytest.mark.parametrize("name", sorted(zoo.PRETRAINED))
def test_bundled_model_loads_as_float64_in_eval_mode(name):
    info = zoo.PRETRAINED[name]
    model = zoo.pretrained(name)
    assert not model.training
    assert {v.dtype for v in model.state_dict().values()} == {np.dtype(np.float64)}
    c, h, w = info["input_shape"]
    # a classifier outputs one score per class; the embedding network a 16-D unit vector
    width = 16 if info["architecture"] == "embed" else len(info["class_names"])
    assert model.forward(np.full((2, c, h, w), 0.5)).shape == (2, width)
    assert dict(model.output_shapes((1, c, h, w)))[_feature_layer(model)][2:] == (8, 8)
    # A fresh model per call: editing one leaves the next untouched.
    model["fc" if "fc" in model else "fc2"].params["b"] = np.full_like(model.state_dict()["conv1.b"][:1], 9.0)
    again = zoo.pretrained(name)
    assert not np.any(again.state_dict()[("fc" if "fc" in again else "fc2") + ".b"] == 9.0)


def _feature_layer(model):
    return [n for n, s in model.output_shapes((1,) + tuple(_input_shape(model))) if len(s) == 4][-1]


def _input_shape(model):
    return (model["conv1"].in_channels, 32, 32)


@pytest.mark.parametrize("name", sorted(zoo.PRETRAINED))
def test_file_metadata_matches_the_registry(name):
    info = zoo.PRETRAINED[name]
    with zoo.pretrained_path(name).open("rb") as f:
        meta = io.load_metadata(f)
    for key in ("dataset", "dataset_kwargs", "input_shape", "class_names", "command", "heldout", "heldout_accuracy"):
        assert meta[key] == info[key], key
    assert meta["architecture"] == info["architecture"]
    dataset = datasets.load_dataset(info["dataset"], 1, seed=0, **info["dataset_kwargs"])
    assert list(dataset.class_names) == info["class_names"]
    assert list(dataset.images.shape[1:]) == info["input_shape"]
    assert info["command"].endswith(f"--out data/{info['file']}")


@pytest.mark.parametrize("name", sorted(zoo.PRETRAINED))
def test_bundled_model_meets_its_bar_on_held_out_data(name):
    res = recipes.evaluate_pretrained(name)
    assert res["accuracy"] >= BARS[name], (name, res["accuracy"])
    # The registry's figure is this measurement (deterministic in float64).
    assert res["accuracy"] == zoo.PRETRAINED[name]["heldout_accuracy"]
    assert res["confusion"].sum() == res["n"]
    assert np.trace(res["confusion"]) == round(res["accuracy"] * res["n"])


@pytest.mark.parametrize("name", sorted(zoo.PRETRAINED))
def test_bundled_model_on_a_second_fresh_sample(name):
    # Not the registry's seed: the figure is not a property of one sample.
    res = recipes.evaluate_pretrained(name, n=500, seed=2024)
    assert res["accuracy"] >= BARS[name], (name, res["accuracy"])


def test_digits_held_out_handwriting_is_unseen():
    # The held-out digits come only from the test split of the handwriting.
    info = zoo.PRETRAINED["digits-gap"]
    test = datasets.load_dataset("digits", 50, seed=info["heldout"]["seed"], **info["heldout"]["kwargs"])
    assert set(test.source_index) <= set(datasets.digit_split_indices("test"))
    assert not set(test.source_index) & set(datasets.digit_split_indices("train"))


def test_grad_cam_of_each_class_peaks_on_its_object():
    # Two-object scenes: Grad-CAM for each object's class should peak inside
    # that object's box (upsampled to the image) far more often than chance.
    model = zoo.pretrained("shapes-gap")
    scenes = datasets.scenes(40, seed=7)
    hits = []
    for k in range(2):
        maps = mc.grad_cam(model, scenes.images, scenes.labels[:, k])
        up = mc.upsample(maps, scenes.images.shape[2:])
        for i in range(len(scenes)):
            y, x = np.unravel_index(np.argmax(up[i]), up[i].shape)
            x0, y0, x1, y1 = scenes.boxes[i, k]
            hits.append(x0 <= x < x1 and y0 <= y < y1)
    rate = np.mean(hits)
    assert rate >= 0.85, rate


def test_shapes_fc_shares_the_frozen_blocks_of_shapes_gap():
    # shapes-fc was trained on shapes-gap's feature maps, its blocks frozen:
    # the two models see the same features and differ only by their heads.
    with zoo.pretrained_path("shapes-fc").open("rb") as f:
        frozen = io.load_metadata(f)["training"]["frozen_layers"]
    assert frozen[0] == "conv1" and frozen[-1] == "relu5"
    gap, fc = zoo.pretrained("shapes-gap").state_dict(), zoo.pretrained("shapes-fc").state_dict()
    shared = [k for k in fc if k.split(".")[0] in frozen]
    assert len(shared) == 5 * 2 + 5 * 4  # W, b of 5 convs; gamma, beta, running mean, running var of 5 BatchNorms
    for key in shared:
        np.testing.assert_array_equal(fc[key], gap[key], err_msg=key)


# ----------------------------------------------------------------------------
# The training recipe and the command line (tiny runs; the bundled models are
# never retrained here)
# ----------------------------------------------------------------------------


def test_cli_train_and_evaluate_model(tmp_path, capsys):
    from minicam.__main__ import main

    out = tmp_path / "tiny.npz"
    assert main(["train", "--dataset", "shapes", "--model", "gap", "--epochs", "1", "--n-train", "24",
                 "--seed", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "held-out accuracy" in text and "wall-clock" in text and "CPU" in text
    meta = io.load_metadata(out)
    assert meta["command"] == (
        "python -m minicam train --dataset shapes --model gap --epochs 1 --batch-size 16 --lr 0.003 --warmup 0 "
        f"--seed 3 --n-train 24 --out {out}"
    )
    assert io.load(out).names == zoo.gap_net().names

    assert main(["evaluate-model", "digits-gap", "--n", "40", "--seed", "9"]) == 0
    text = capsys.readouterr().out
    assert "digits-gap: accuracy" in text and "40 fresh digits images (seed 9, split='test')" in text
    assert "true \\ pred" in text and "recall" in text
    assert len([line for line in text.splitlines() if line[:1].isdigit()]) == 10  # one row per class


def test_cli_bad_input(tmp_path, capsys):
    from minicam.__main__ import main

    assert main(["evaluate-model", "imagenet"]) == 2
    assert "['digits-gap', 'shapes-embed', 'shapes-fc', 'shapes-gap'], got 'imagenet'" in capsys.readouterr().err
    assert main(["train", "--dataset", "cifar", "--model", "gap", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--dataset must be one of ['digits', 'shapes'], got 'cifar'" in capsys.readouterr().err
    assert main(["train", "--dataset", "shapes", "--model", "vgg", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--model must be one of ['embed', 'fc', 'gap'], got 'vgg'" in capsys.readouterr().err
    assert main(["train", "--dataset", "shapes", "--model", "gap", "--batch-size", "0",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "batch_size must be >= 1, got 0" in capsys.readouterr().err
    assert main(["train", "--dataset", "shapes", "--model", "gap", "--out", str(tmp_path / "no" / "x.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.npz").write_text("not a model")
    assert main(["train", "--dataset", "shapes", "--model", "fc", "--features-from", str(tmp_path / "notes.npz"),
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a minicam model file" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
