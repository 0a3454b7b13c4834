"""Saving and loading models (.npz, no pickle) and loading images."""

import io as stdio
import json
import re
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import minicam as mc
from minicam import io, zoo
from minicam.io import ARCHITECTURE_KEY

from io_files import members_of, npy_bytes, patch_zip, zip_bytes


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
    assert "newer minicam" in load_error(tmp_path, with_header(good, dict(header, version=mc.io.FORMAT_VERSION + 1)))
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
# Hostile files (issue 10): one exception type, bounded memory, sane values
# ----------------------------------------------------------------------------


def load_peak(path, **kwargs):
    """``(exception or None, peak traced bytes)`` of ``io.load(path)``."""
    tracemalloc.start()
    try:
        io.load(path, **kwargs)
        err = None
    except Exception as caught:  # the test inspects the type
        err = caught
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err, peak


def raw_members(good):
    return {k: npy_bytes(v) for k, v in good.items()}


def test_zip_layer_errors_are_value_errors(tmp_path):
    # zipfile raises RuntimeError for an encrypted member and NotImplementedError
    # for an unknown compression method; both escaped io.load.
    data = zip_bytes(members_of(zoo.pretrained_path("shapes-gap")))
    for patch, words in ((dict(flag_bits=1), "encrypted"), (dict(compress_type=99), "compression method")):
        path = tmp_path / "patched.npz"
        path.write_bytes(patch_zip(data, **patch))
        with pytest.raises(ValueError, match=words) as info:
            io.load(path)
        assert str(path) in str(info.value)


def test_garbled_npy_header_is_a_value_error(tmp_path, good):
    # numpy's header parser falls back to the tokenizer, which raised TokenError.
    members = raw_members(good)
    members["conv1.b"] = npy_bytes(good["conv1.b"], header="{'descr': '<f8', '''")
    path = tmp_path / "garbled.npz"
    path.write_bytes(zip_bytes(members))
    with pytest.raises(ValueError, match="'conv1.b.npy' is not a readable .npy array"):
        io.load(path)


def test_header_that_lies_about_its_size(tmp_path, good):
    members = raw_members(good)
    lie = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    members["fc.b"] = npy_bytes(np.zeros(3), header=lie)
    path = tmp_path / "lie.npz"
    path.write_bytes(zip_bytes(members))
    err, peak = load_peak(path)
    assert isinstance(err, ValueError) and "'fc.b.npy' holds" in str(err), err
    assert peak < 4 * 2**20


@pytest.mark.parametrize("features, words", [
    (14000, "MAX_ARRAY_ELEMENTS"),  # 196 M scalars: above the cap
    (10000, "'fc.W' must have shape (10000, 10000)"),  # under the cap, but the stored array is (3, 3)
])
def test_huge_declared_layer_is_refused_before_building(tmp_path, good, features, words):
    # Linear(14000, 14000) in a 141 KB file peaked at 3 GB: the layer was
    # built, and randomly initialised, before the stored arrays were checked.
    header = header_of(good)
    fc = next(spec for spec in header["layers"] if spec["type"] == "Linear")
    fc["config"] = {"in_features": features, "out_features": features}
    path = tmp_path / "huge.npz"
    write_npz(path, with_header(good, header))
    err, peak = load_peak(path)
    assert isinstance(err, ValueError) and words in str(err), err
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_huge_declared_architecture_is_refused_before_reading(tmp_path, good):
    # A 1 MB file declaring a 1 GB architecture string peaked at 1.9 GB.
    chars = 2 * io.MAX_ARCHITECTURE_CHARS
    members = raw_members(good)
    text = npy_bytes(np.array(""), header=f"{{'descr': '<U{chars}', 'fortran_order': False, 'shape': (), }}")
    members[ARCHITECTURE_KEY] = text + bytes(4 * chars - 4)  # the declared size in zeros: KB once deflated
    path = tmp_path / "long.npz"
    path.write_bytes(zip_bytes(members))
    assert path.stat().st_size < 100_000
    del members
    err, peak = load_peak(path)
    assert isinstance(err, ValueError) and "MAX_ARCHITECTURE_CHARS" in str(err), err
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("layer, key, value, words", [
    (0, "padding", 10**6, "padding must be <= 64"),
    (0, "kernel_size", io.MAX_KERNEL_SIZE + 1, "kernel_size must be <="),
    (0, "stride", 0, "stride must be >= 1"),
    (0, "out_channels", io.MAX_FEATURES + 1, "out_channels must be <="),
    (0, "in_channels", True, "in_channels must be an int"),
    (0, "in_channels", -1, "in_channels must be >= 1"),
    (2, "eps", "small", "eps must be a real number"),
    (2, "momentum", 10**400, "int too large"),  # float() overflows
])
def test_hyper_parameters_are_bounded(tmp_path, good, layer, key, value, words):
    header = header_of(good)
    header["layers"][layer]["config"][key] = value
    msg = load_error(tmp_path, with_header(good, header))
    assert words in msg and "invalid config" in msg and str(tmp_path / "bad.npz") in msg, msg


@pytest.mark.parametrize("key, value, dtype, words", [
    ("bn1.running_var", -0.5, np.float64, "is a variance but holds a negative value -0.5"),
    ("conv1.W", 3e38, np.float64, "magnitude 3e+38, above MAX_ABS_VALUE"),
    ("conv1.W", 3e38, np.float32, "magnitude 3e+38, above MAX_ABS_VALUE"),  # finite in float32, but absurd
    ("fc.W", 1e39, np.float32, "NaN or infinity (after casting to float32"),
    ("fc.W", 1e39, np.float64, "above MAX_ABS_VALUE"),
    ("fc.b", np.nan, np.float64, "NaN or infinity"),
])
def test_values_are_checked_after_casting(tmp_path, good, key, value, dtype, words):
    members = dict(good)
    members[key] = good[key].copy()
    members[key].flat[-1] = value
    path = tmp_path / "values.npz"
    write_npz(path, members)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow in the cast is no warning either
        with pytest.raises(ValueError, match=re.escape(words)):
            io.load(path, dtype=dtype)
    members[key].flat[-1] = 0.5  # the same file with a sane value loads
    write_npz(path, members)
    io.load(path, dtype=dtype)


def test_every_message_names_a_file_object(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with open(tmp_path / "junk.npz", "rb") as f, pytest.raises(ValueError, match="junk.npz"):
        io.load(f)
    with pytest.raises(ValueError, match="<BytesIO>"):
        io.load(stdio.BytesIO(b"junk"))


def test_shape_rules_match_the_constructors():
    # The loader computes every array's shape from the config before building
    # anything; these rules must agree with what each layer allocates.
    examples = {
        "Conv2d": dict(in_channels=3, out_channels=5, kernel_size=3, stride=2, padding=1),
        "Linear": dict(in_features=7, out_features=4),
        "BatchNorm2d": dict(num_features=6),
        "MaxPool2d": dict(kernel_size=3, stride=2, padding=1), "AvgPool2d": dict(kernel_size=3, stride=1),
        "AdaptiveAvgPool2d": dict(output_size=(3, 2)),
        "Dropout": dict(p=0.1), "ReLU": {}, "GlobalAvgPool2d": {}, "Flatten": {}, "L2Normalize": {},
    }
    assert set(examples) == set(mc.layers.LAYER_TYPES)
    for kind, config in examples.items():
        layer = mc.layers.LAYER_TYPES[kind](**config)
        built = {k: v.shape for k, v in {**layer.params, **layer.buffers}.items()}
        assert io.specs._layer_arrays(kind, layer.config()) == built, kind
    no_bias = mc.Conv2d(3, 5, 1, bias=False)
    assert io.specs._layer_arrays("Conv2d", no_bias.config()) == {"W": (5, 3, 1, 1)} == {k: v.shape for k, v in no_bias.params.items()}
    assert io.specs._layer_arrays("Softplus", {}) is None


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
