"""Saving and loading models (.npz, no pickle) and loading images."""

import json
import zipfile

import numpy as np
import pytest

import minicam as mc
from minicam import io, zoo
from minicam.io import ARCHITECTURE_KEY


def every_layer_model(rng):
    """A model using every layer type, with non-trivial BatchNorm statistics."""
    model = mc.Sequential([
        ("conv1", mc.Conv2d(2, 4, 3, stride=1, padding=1, rng=rng)),
        ("bn1", mc.BatchNorm2d(4, eps=1e-4, momentum=0.2)),
        ("relu1", mc.ReLU()),
        ("pool1", mc.MaxPool2d(2)),
        ("conv2", mc.Conv2d(4, 5, 3, stride=2, padding=1, rng=rng)),
        ("relu2", mc.ReLU()),
        ("avg", mc.AvgPool2d(2, stride=1)),
        ("drop", mc.Dropout(0.25, rng=rng)),
        ("flatten", mc.Flatten()),
        ("fc1", mc.Linear(5, 3, rng=rng)),
    ])
    model.forward(rng.standard_normal((4, 2, 8, 8)))  # training mode: BatchNorm statistics move
    for layer in model.layers:  # non-zero biases, so that a lost bias would show
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape)
    return model.eval()


def test_round_trip_is_bit_for_bit(tmp_path, rng):
    model = every_layer_model(rng)
    x = rng.standard_normal((3, 2, 8, 8))
    before = model.forward(x)
    path = tmp_path / "model.npz"
    io.save(model, path)
    loaded = io.load(path)
    assert loaded.names == model.names
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    state, state2 = model.state_dict(), loaded.state_dict()
    assert sorted(state) == sorted(state2)
    assert "bn1.running_var" in state2
    for key in state:
        np.testing.assert_array_equal(state2[key], state[key], err_msg=key)
    assert not loaded.training  # loaded ready for inference
    np.testing.assert_array_equal(loaded.forward(x), before)


def test_gap_net_round_trip_scores_identical(tmp_path, rng):
    model = zoo.gap_net(rng=1).eval()  # BatchNorm on running statistics, as loaded
    for layer in model.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.standard_normal(layer.params["b"].shape)
    x = rng.random((2, 3, 32, 32))
    io.save(model, tmp_path / "g.npz")
    np.testing.assert_array_equal(io.load(tmp_path / "g.npz").forward(x), model.forward(x))


def test_float32_saved_loads_as_float64(tmp_path, rng):
    model = zoo.gap_net(in_channels=1, num_classes=10, widths=(4, 6), rng=2, dtype=np.float32)
    io.save(model, tmp_path / "f32.npz")
    with np.load(tmp_path / "f32.npz", allow_pickle=False) as npz:
        assert npz["conv1.W"].dtype == np.float32  # stored at half the size
    loaded = io.load(tmp_path / "f32.npz")
    for key, value in loaded.state_dict().items():
        assert value.dtype == np.float64, key
        # float32 -> float64 is exact
        np.testing.assert_array_equal(value, model.state_dict()[key].astype(np.float64))
    assert io.load(tmp_path / "f32.npz", dtype=np.float32).state_dict()["fc.W"].dtype == np.float32
    with pytest.raises(TypeError, match="dtype"):
        io.load(tmp_path / "f32.npz", dtype=np.int32)


def test_file_is_reproducible_and_readable_without_minicam(tmp_path):
    model = zoo.fc_net(widths=(4, 8), hidden=6, rng=3)
    io.save(model, tmp_path / "a.npz", metadata={"class_names": ["a", "b", "c", "d"]})
    io.save(model, tmp_path / "b.npz", metadata={"class_names": ["a", "b", "c", "d"]})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        header = json.loads(str(npz[ARCHITECTURE_KEY]))
        assert header["format"] == "minicam-model" and header["version"] == 1
        assert [spec["name"] for spec in header["layers"]] == model.names
        np.testing.assert_array_equal(npz["fc1.W"], model["fc1"].params["W"])
    assert io.load_metadata(tmp_path / "a.npz") == {"class_names": ["a", "b", "c", "d"]}


def test_save_writes_exactly_the_path(tmp_path):
    model = zoo.gap_net(widths=(2,), rng=0)
    io.save(model, tmp_path / "weights.bin")  # np.savez would append ".npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]
    io.load(tmp_path / "weights.bin")


def test_save_refuses_what_it_cannot_describe(tmp_path):
    class MyReLU(mc.ReLU):
        pass

    with pytest.raises(TypeError, match="layer 'act'.*MyReLU"):
        io.save(mc.Sequential([("act", MyReLU())]), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="metadata"):
        io.save(zoo.gap_net(widths=(2,), rng=0), tmp_path / "x.npz", metadata={"f": np.zeros(2)})
    with pytest.raises(TypeError, match="metadata"):
        io.save(zoo.gap_net(widths=(2,), rng=0), tmp_path / "x.npz", metadata=["not", "a", "dict"])
    bad = zoo.gap_net(widths=(2,), rng=0)
    bad["fc"].params["W"] = np.full_like(bad["fc"].params["W"], np.nan)
    with pytest.raises(ValueError, match="fc.W.*NaN"):
        io.save(bad, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="model"):
        io.save({"W": np.zeros(2)}, tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left behind


# ----------------------------------------------------------------------------
# Damaged and foreign files
# ----------------------------------------------------------------------------


def write_npz(path, members):
    """Write a zip of .npy members by hand (object arrays allowed: this is the attacker's side)."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in members.items():
            with zf.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)


@pytest.fixture
def good(tmp_path):
    """A valid file's members: {"__architecture__": str array, "conv1.W": ..., ...}."""
    model = zoo.gap_net(in_channels=1, num_classes=3, widths=(2, 3), rng=0)
    io.save(model, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def header_of(members):
    return json.loads(str(members[ARCHITECTURE_KEY]))


def with_header(members, header):
    out = dict(members)
    out[ARCHITECTURE_KEY] = np.array(json.dumps(header) if not isinstance(header, str) else header)
    return out


def load_error(tmp_path, members, exc=ValueError):
    path = tmp_path / "bad.npz"
    write_npz(path, members)
    with pytest.raises(exc) as info:
        io.load(path)
    return str(info.value)


def test_not_a_zip(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("these are not weights")
    with pytest.raises(ValueError, match="not a minicam model file.*not an .npz"):
        io.load(path)
    # A bare .npy file is not a model file either, and is not unpickled.
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz"):
        io.load(tmp_path / "arr.npy")


def test_truncated_file(tmp_path):
    io.save(zoo.gap_net(widths=(4, 8), rng=0), tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not an .npz"):
            io.load(tmp_path / "cut.npz")


def test_damaged_member(tmp_path):
    # Flip bytes inside a compressed array: the zip's CRC check catches it.
    io.save(zoo.gap_net(widths=(4, 8), rng=0), tmp_path / "m.npz")
    data = bytearray((tmp_path / "m.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        info = zf.getinfo("conv2.W.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + 60):
        data[i] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="conv2.W"):
        io.load(tmp_path / "bad.npz")


def test_plain_npz_is_not_a_model(tmp_path):
    np.savez(tmp_path / "plain.npz", W=np.zeros(3))
    with pytest.raises(ValueError, match="not a minicam model file.*__architecture__"):
        io.load(tmp_path / "plain.npz")


def test_missing_array(tmp_path, good):
    members = dict(good)
    del members["conv2.b"]
    assert "missing ['conv2.b']" in load_error(tmp_path, members)


def test_extra_array(tmp_path, good):
    members = dict(good, **{"conv9.W": np.zeros(2)})
    assert "unexpected ['conv9.W']" in load_error(tmp_path, members)


def test_wrong_shape(tmp_path, good):
    members = dict(good)
    members["fc.W"] = np.zeros((3, 4))
    msg = load_error(tmp_path, members)
    assert "'fc.W'" in msg and "(3, 3)" in msg and "(3, 4)" in msg


def test_integer_array(tmp_path, good):
    members = dict(good)
    members["fc.b"] = np.zeros(3, dtype=np.int64)
    assert "float dtype" in load_error(tmp_path, members)


def test_non_finite_array(tmp_path, good):
    members = dict(good)
    members["fc.b"] = np.array([0.0, np.inf, 1.0])
    assert "'fc.b' contains NaN or infinity" in load_error(tmp_path, members)


def test_object_array_is_never_unpickled(tmp_path, good):
    members = dict(good)
    members["fc.b"] = np.array([{"pickled": True}, None, 1], dtype=object)
    assert "Python objects" in load_error(tmp_path, members)
    # Also as the architecture record.
    members = dict(good)
    members[ARCHITECTURE_KEY] = np.array([header_of(good)], dtype=object)
    assert "0-d unicode string" in load_error(tmp_path, members)


def test_bad_json(tmp_path, good):
    members = with_header(good, '{"format": "minicam-model", "version": 1, "layers": [')
    assert "not valid JSON" in load_error(tmp_path, members)


def test_foreign_format_and_newer_version(tmp_path, good):
    header = header_of(good)
    assert "format 'keras'" in load_error(tmp_path, with_header(good, dict(header, format="keras")))
    assert "newer minicam" in load_error(tmp_path, with_header(good, dict(header, version=2)))
    assert "unexpected ['optimizer']" in load_error(tmp_path, with_header(good, dict(header, optimizer="adam")))


def test_unknown_layer_type(tmp_path, good):
    header = header_of(good)
    header["layers"][1]["type"] = "Softplus"
    msg = load_error(tmp_path, with_header(good, header))
    assert "unknown type 'Softplus'" in msg and "Conv2d" in msg


def test_bad_layer_configs(tmp_path, good):
    header = header_of(good)
    header["layers"][0]["config"]["dilation"] = 2
    assert "unexpected ['dilation']" in load_error(tmp_path, with_header(good, header))
    header = header_of(good)
    del header["layers"][0]["config"]["in_channels"]
    assert "missing ['in_channels']" in load_error(tmp_path, with_header(good, header))
    header = header_of(good)
    header["layers"][0]["config"]["kernel_size"] = 2.5
    assert "layer 'conv1' (Conv2d) has an invalid config" in load_error(tmp_path, with_header(good, header))
    header = header_of(good)
    header["layers"][0]["config"]["out_channels"] = 5  # the arrays no longer fit
    assert "'conv1.W' must have shape (5, 1, 3, 3)" in load_error(tmp_path, with_header(good, header))
    header = header_of(good)
    header["layers"][1]["name"] = "conv1"
    assert "unique" in load_error(tmp_path, with_header(good, header))
    header = header_of(good)
    header["layers"][1]["extra"] = 1
    assert "exactly the keys" in load_error(tmp_path, with_header(good, header))


def test_load_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        io.load(tmp_path / "nothing.npz")
    with pytest.raises(TypeError, match="path"):
        io.load(42)


def test_load_from_file_object(tmp_path):
    model = zoo.gap_net(widths=(3,), rng=0)
    io.save(model, tmp_path / "m.npz")
    with open(tmp_path / "m.npz", "rb") as f:
        loaded = io.load(f)
    np.testing.assert_array_equal(loaded["fc"].params["W"], model["fc"].params["W"])


# ----------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------


def test_load_image(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2  # (H, W, C)
    Image.fromarray(pixels).save(tmp_path / "img.png")
    x = io.load_image(tmp_path / "img.png")
    assert x.shape == (1, 3, 4, 6) and x.dtype == np.float64
    np.testing.assert_array_equal(x[0], pixels.transpose(2, 0, 1) / 255.0)
    assert capsys.readouterr().out == ""  # no resize, no message

    x = io.load_image(tmp_path / "img.png", size=(8, 5))
    assert x.shape == (1, 3, 8, 5) and 0.0 <= x.min() and x.max() <= 1.0
    assert "resized" in capsys.readouterr().out

    g = io.load_image(tmp_path / "img.png", size=4, mode="L", verbose=False)
    assert g.shape == (1, 1, 4, 4)
    assert capsys.readouterr().out == ""


def test_load_image_bad_input(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        io.load_image(tmp_path / "t.png")
    with pytest.raises(ValueError, match="mode"):
        io.load_image(tmp_path / "t.png", mode="CMYK")
    with pytest.raises(ValueError, match="size"):
        io.load_image(tmp_path / "t.png", size=0)
