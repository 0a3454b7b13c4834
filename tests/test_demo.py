"""The demo and explain commands: run them as a user would, check what they write and say."""

import contextlib
import io as stdio
import re

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
Image = pytest.importorskip("PIL.Image")

import minicam as mc  # noqa: E402
from minicam import datasets, demo, zoo  # noqa: E402
from minicam import io as mcio  # noqa: E402
from minicam.__main__ import main  # noqa: E402


def run_cli(argv):
    """``python -m minicam ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("demo") / "figures"  # does not exist yet: the demo makes it
    code, stdout, stderr = run_cli(["demo", "--out", str(out_dir)])
    return code, stdout, stderr, out_dir


def test_demo_exits_zero_and_writes_valid_pngs(demo_run):
    code, stdout, stderr, out_dir = demo_run
    assert code == 0, stdout + stderr
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["digits-gap.png", "overview.png", "scene.png", "shapes-gap.png"]
    for path in out_dir.iterdir():
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 400 and img.height > 150
        assert str(path) in stdout


def test_demo_reports_the_identity_measured_live(demo_run):
    stdout = demo_run[1]
    match = re.search(r"max \|GradCAM_signed - CAM/\(h\*w\)\| = (\S+)\s+on shapes-gap.*limit 1e-10: PASS", stdout)
    assert match, stdout
    assert float(match.group(1)) < 1e-10


def test_demo_reports_where_each_class_points_in_the_scene(demo_run):
    stdout = demo_run[1]
    scene = re.search(r"#0: a (\w+) and a (\w+)\)", stdout)
    assert scene, stdout
    for name in scene.groups():
        line = re.search(rf"class {name}\s+Grad-CAM:\s+(.*)", stdout)
        assert line, f"no Grad-CAM line for class {name}:\n{stdout}"
        assert re.search(r"-> (the \w+ \(inside its (mask|box)|neither object)|flat map", line.group(1))
    assert stdout.count("counterfactual:") == 2
    rate = re.search(r"lies in that object's box for ([\d.]+)%", stdout)
    assert rate and 0.0 <= float(rate.group(1)) <= 100.0


def test_demo_reports_held_out_accuracy_of_every_model(demo_run):
    stdout = demo_run[1]
    for name in ("shapes-gap", "shapes-fc", "digits-gap"):
        assert re.search(rf"{name}\s+held-out accuracy\s+[\d.]+%", stdout), stdout


def test_demo_refuses_a_file_as_out_dir(tmp_path):
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(ValueError, match="out_dir must be a directory"):
        demo.run_demo(target, verbose=False)


# --------------------------------------------------------------------------
# explain IMAGE
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """A shapes image saved as RGBA at another size, and a digit saved as grey L at another size."""
    d = tmp_path_factory.mktemp("images")
    shape = datasets.shapes(1, seed=321)
    rgb = (np.transpose(shape.images[0], (1, 2, 0)) * 255).round().astype(np.uint8)  # (32, 32, 3)
    rgba = np.concatenate([rgb, np.full((32, 32, 1), 200, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").resize((50, 40)).save(d / "shape_rgba.png")
    Image.fromarray(rgb, "RGB").save(d / "shape_rgb32.png")
    digit = datasets.cluttered_digits(1, seed=321, split="test")
    grey = (digit.images[0, 0] * 255).round().astype(np.uint8)
    Image.fromarray(grey, "L").resize((28, 20)).save(d / "digit_grey.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_explain_rgba_resized_image(image_files, tmp_path):
    out = tmp_path / "gc.png"
    code, stdout, stderr = run_cli(
        ["explain", str(image_files / "shape_rgba.png"), "--model", "shapes-gap", "--method", "grad-cam", "--out", str(out)]
    )
    assert code == 0, stderr
    assert "resizing shape_rgba.png from 40x50 to shapes-gap's input 32x32" in stdout
    assert re.search(r"shapes-gap predicts '(circle|square|triangle|cross)' \(class \d\): logit -?[\d.]+, softmax [\d.]+", stdout)
    with Image.open(out) as img:
        img.verify()


def test_explain_grey_digit_for_a_named_class(image_files, tmp_path):
    out = tmp_path / "gb.png"
    code, stdout, stderr = run_cli(
        ["explain", str(image_files / "digit_grey.png"), "--model", "digits-gap", "--method", "guided-backprop",
         "--class", "7", "--out", str(out)]
    )
    assert code == 0, stderr
    assert "from 20x28 to digits-gap's input 32x32" in stdout
    with Image.open(out) as img:
        assert img.format == "PNG"


def test_explain_at_the_model_size_does_not_resize(image_files, tmp_path):
    result = demo.explain_image(image_files / "shape_rgb32.png", "shapes-gap", "cam", out=None, verbose=False)
    assert result["resized"] is False
    assert result["image"].shape == (3, 32, 32)
    # The map explained is the library's, on the image as loaded.
    x = mcio.load_image(image_files / "shape_rgb32.png")
    model = zoo.pretrained("shapes-gap")
    np.testing.assert_array_equal(result["map"], mc.cam(model, x, result["class_idx"])[0])
    assert result["predicted"] == int(np.argmax(model.forward(x)))


def test_explain_class_by_name_equals_class_by_index(image_files):
    path = image_files / "shape_rgb32.png"
    by_name = demo.explain_image(path, "shapes-gap", "grad-cam", class_idx=demo.parse_class("shapes-gap", "cross"),
                                 verbose=False)
    by_index = demo.explain_image(path, "shapes-gap", "grad-cam", class_idx=3, verbose=False)
    assert by_name["class_idx"] == 3
    np.testing.assert_array_equal(by_name["map"], by_index["map"])


@pytest.mark.parametrize("method", demo.METHODS)
def test_explain_every_method_gives_a_map_of_the_documented_kind(image_files, method):
    result = demo.explain_image(image_files / "shape_rgb32.png", "shapes-gap", method, verbose=False)
    m = result["map"]
    assert np.all(np.isfinite(m))
    if demo._methods()[method][1] == "signed":
        assert m.shape == (3, 32, 32)
    else:
        assert m.ndim == 2 and m.shape[0] <= 32 and m.shape[1] <= 32


def test_explain_grad_cam_on_the_fc_model(image_files):
    result = demo.explain_image(image_files / "shape_rgb32.png", "shapes-fc", "grad-cam", verbose=False)
    assert result["map"].shape == (8, 8) and np.all(result["map"] >= 0)


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing.png", "--model", "shapes-gap", "--method", "cam"], "image file not found: 'missing.png'"),
        (["{img}", "--model", "shapes-xl", "--method", "cam"], "model must be one of the bundled models"),
        (["{img}", "--model", "shapes-gap", "--method", "gradcam"], "method must be one of"),
        (["{img}", "--model", "shapes-gap", "--method", "cam", "--layer", "conv9"], "got 'conv9'"),
        (["{img}", "--model", "shapes-gap", "--method", "cam", "--class", "4"], "class_idx must be in [0, 4)"),
        (["{img}", "--model", "shapes-gap", "--method", "cam", "--class", "-1"], "class_idx must be >= 0"),
        (["{img}", "--model", "shapes-gap", "--method", "cam", "--class", "hexagon"], "got 'hexagon'"),
        (["{img}", "--model", "shapes-fc", "--method", "cam"], "GAP"),
        (["{img}", "--model", "shapes-gap", "--method", "saliency", "--layer", "relu3"], "takes no layer"),
        (["{img}", "--model", "shapes-gap", "--method", "eigen-cam", "--class", "1"], "class-agnostic"),
        (["{txt}", "--model", "shapes-gap", "--method", "cam"], "not a readable image"),
    ],
)
def test_explain_errors_are_clear_and_exit_2(image_files, tmp_path, args, words):
    args = [a.format(img=image_files / "shape_rgb32.png", txt=image_files / "notes.txt") for a in args]
    out = tmp_path / "never.png"
    code, stdout, stderr = run_cli(["explain", *args, "--out", str(out)])
    assert code == 2
    assert stderr.startswith("python -m minicam explain: error:")
    assert words in stderr, stderr
    assert not out.exists()
