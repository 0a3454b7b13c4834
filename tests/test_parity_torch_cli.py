"""``python -m minicam check-torch``: agrees on the shipped example, fails loudly otherwise.

Exit codes: 0 when every quantity agrees within the tolerance, 1 when one
does not (shown here with a deliberately wrong minicam backward), 2 on bad
input (a state dict that does not fit, an unsupported layer, an input shape
that does not fit). Skipped without torch/captum; with ``CI`` set, a missing
torch/captum is an error.
"""

import os
import pathlib
import runpy
import subprocess
import sys

import numpy as np
import pytest

import minicam as mc
from minicam.__main__ import main
from parity_support import require

torch = require("torch", "check-torch's tests")
require("captum", "check-torch's tests")
bridge = require("minicam.interop.torch", "check-torch's tests")
from minicam.interop import compare as comparison  # noqa: E402  (torch-free to import; uses torch when run)
nn = torch.nn

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
MODEL = str(EXAMPLES / "tiny_cnn.py")
STATE = str(EXAMPLES / "tiny_cnn.pt")
BASE = ["check-torch", "--model", MODEL, "--input-shape", "2,3,32,32"]


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("method", comparison.METHODS)
def test_example_model_agrees_with_captum(method, capsys):
    layer = ["--layer", "features.5"] if method == "guided-grad-cam" else []
    code, out, err = run(BASE + ["--state-dict", STATE, "--method", method] + layer, capsys)
    assert code == 0, out + err
    assert "0 failed" in out and "FAIL" not in out
    for quantity in ("logits", "input gradient", "layer output", "layer gradient"):
        assert quantity in out
    assert "tolerance 1e-10" in out


def test_example_in_float32_with_its_looser_tolerance(capsys):
    code, out, err = run(BASE + ["--state-dict", STATE, "--dtype", "float32", "--class-idx", "2"], capsys)
    assert code == 0, out + err
    assert "tolerance 1e-04" in out and "class [2, 2]" in out


def test_layer_by_torch_path_which_is_the_minicam_name(capsys):
    code, out, _ = run(BASE + ["--layer", "features.7"], capsys)
    assert code == 0 and "layer 'features.7' (torch 'features.7')" in out


def test_the_real_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "minicam"] + BASE + ["--state-dict", STATE],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Grad-CAM map (captum LayerGradCam)" in proc.stdout


def test_a_wrong_minicam_backward_is_caught(monkeypatch, capsys):
    # A ReLU whose backward forgets the mask: the gradients and maps must FAIL.
    def leaky_backward(self, dout, mode="standard"):
        return dout.copy()

    monkeypatch.setattr(mc.ReLU, "backward", leaky_backward)
    code, out, _ = run(BASE + ["--state-dict", STATE], capsys)
    assert code == 1
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert rows["logits"].endswith("PASS")  # the forward is untouched
    assert rows["input gradient"].endswith("FAIL")
    assert "failed" in out.splitlines()[-1] and " 0 failed" not in out


def test_tolerance_is_applied(capsys):
    # differences are rounding-level (~1e-16): a tolerance below them fails
    code, out, _ = run(BASE + ["--state-dict", STATE, "--rtol", "1e-300"], capsys)
    assert code == 1 and "FAIL" in out


def test_a_state_dict_that_does_not_fit_names_the_tensors(tmp_path, capsys):
    spec = runpy.run_path(MODEL)
    bigger = spec["build_model"](num_classes=5)
    path = tmp_path / "five_classes.pt"
    torch.save(bigger.state_dict(), path)
    code, out, err = run(BASE + ["--state-dict", str(path)], capsys)
    assert code == 2 and out == ""
    assert "does not fit the architecture" in err
    assert "'classifier.3.weight' has shape (5, 16), the architecture expects (4, 16)" in err


def test_an_unsupported_layer_is_named(tmp_path, capsys):
    path = tmp_path / "dilated.py"
    path.write_text(
        "from torch import nn\n"
        "model = nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
        " nn.Linear(4, 2))\n"
    )
    code, _, err = run(["check-torch", "--model", str(path), "--builder", "model", "--input-shape", "1,3,16,16"], capsys)
    assert code == 2
    assert "0 (Conv2d): dilation=(2, 2) is not supported" in err
    path.write_text("from torch import nn\nmodel = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())\n")
    code, _, err = run(["check-torch", "--model", str(path), "--builder", "model", "--input-shape", "1,3,16,16"], capsys)
    assert code == 2 and "1 (GELU) is not supported" in err


def test_an_input_shape_that_does_not_fit_names_the_layer(capsys):
    code, _, err = run(["check-torch", "--model", MODEL, "--input-shape", "2,1,32,32"], capsys)
    assert code == 2
    assert "an input of shape (2, 1, 32, 32) does not fit the model: layer 'features.0' (Conv2d)" in err
    code, _, err = run(["check-torch", "--model", MODEL, "--input-shape", "2,3,32"], capsys)
    assert code == 2 and "N,C,H,W" in err


def test_other_bad_arguments(capsys):
    code, _, err = run(BASE + ["--builder", "make"], capsys)
    assert code == 2 and "defines no 'make'" in err
    code, _, err = run(BASE + ["--layer", "classifier.3"], capsys)
    assert code == 2 and "layer must output a 4-D feature map (N, K, h, w) for a CAM method" in err
    code, _, err = run(BASE + ["--layer", "features.42"], capsys)
    assert code == 2 and "got 'features.42'" in err
    code, _, err = run(BASE + ["--class-idx", "4"], capsys)
    assert code == 2 and "got 4" in err
    code, _, err = run(["check-torch", "--model", "missing.py", "--input-shape", "1,3,8,8"], capsys)
    assert code == 2 and "model file not found" in err


def test_compare_refuses_training_mode_dropout():
    module = runpy.run_path(MODEL)["build_model"]().train()
    x = np.zeros((2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"classifier\.2 \(Dropout\) is in training mode"):
        comparison.compare(module, x)


def test_shipped_state_dict_is_the_scripts_output():
    made = runpy.run_path(str(EXAMPLES / "make_tiny_cnn_state.py"))["make_state"](seed=0)
    shipped = torch.load(STATE, weights_only=True)
    assert made.keys() == shipped.keys()
    for key in made:
        assert torch.equal(made[key], shipped[key]), key
    assert os.path.getsize(STATE) < 64 * 1024


@pytest.mark.parametrize("layer", ["0", "1", "3"])
def test_in_place_relus_do_not_corrupt_the_reference(tmp_path, layer, capsys):
    # nn.ReLU(inplace=True) overwrites its input: the hooked output of the
    # conv before it would read as post-ReLU values unless compared out of place
    path = tmp_path / "inplace.py"
    path.write_text(
        "from torch import nn\n"
        "def build_model():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),\n"
        "                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Dropout(0.5, inplace=True), nn.Linear(4, 3))\n"
    )
    for method in ("grad-cam", "guided-backprop"):
        code, out, err = run(["check-torch", "--model", str(path), "--input-shape", "2,3,8,8", "--layer", layer,
                              "--method", method], capsys)
        assert code == 0, out + err


TESTS = pathlib.Path(__file__).resolve().parent


def torchvision_like_file(tmp_path, name, width):
    """A model file whose builder is one of tests/torchvision_like.py's networks (torchvision's module tree)."""
    path = tmp_path / f"{name}.py"
    path.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import torchvision_like\n"
        f"def build_model():\n    return torchvision_like.{name}(num_classes=5, width={width!r})\n"
    )
    return str(path)


@pytest.mark.parametrize("name,size", [("resnet18", 32), ("resnet50", 32), ("vgg11_bn", 32), ("alexnet", 63)])
@pytest.mark.parametrize("method", ["grad-cam", "guided-backprop"])
def test_real_architectures_are_accepted_and_agree(tmp_path, name, size, method, capsys):
    model = torchvision_like_file(tmp_path, name, 1 / 16)
    code, out, err = run(["check-torch", "--model", model, "--input-shape", f"2,3,{size},{size}", "--method", method],
                         capsys)
    assert code == 0, out + err
    assert "0 failed" in out
    layer = "layer4" if name.startswith("resnet") else {"vgg11_bn": "features.27", "alexnet": "features.11"}[name]
    assert f"layer {layer!r} (torch {layer!r})" in out


def test_one_call_of_a_reused_relu_module_is_refused_as_a_layer(tmp_path, capsys):
    model = torchvision_like_file(tmp_path, "resnet18", 1 / 16)
    code, _, err = run(["check-torch", "--model", model, "--input-shape", "1,3,32,32", "--method", "saliency",
                        "--layer", "layer4.1.relu1"], capsys)
    assert code == 2
    assert "is one of 2 calls of the torch module 'layer4.1.relu'" in err
