"""Write ``tiny_cnn.pt``: the state dict of ``tiny_cnn.build_model()`` with fixed weights.

    python examples/make_tiny_cnn_state.py [OUTPUT]

PyTorch's default initialisation with seed 0, then BatchNorm statistics and
biases set from the same seed so that every tensor is non-trivial (a fresh
BatchNorm has mean 0 and variance 1, which would hide a swapped buffer).
Saved as float32, as a PyTorch user would; ``check-torch`` widens it to
float64 exactly. No training: the check compares arithmetic, not accuracy.
"""

import pathlib
import runpy
import sys

import torch

# the model file next to this script, loaded by path as check-torch loads it
build_model = runpy.run_path(str(pathlib.Path(__file__).with_name("tiny_cnn.py")))["build_model"]


def make_state(seed=0):
    """The state dict (float32 tensors), the same for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # leave the caller's global generator as it was
        torch.manual_seed(seed)
        model = build_model()
    with torch.no_grad():
        bn = model.features[1]
        bn.running_mean.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
        bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
        bn.weight.copy_(1.0 + 0.2 * torch.randn(bn.num_features, generator=gen))
        bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
        for layer in (model.features[4], model.features[7], model.classifier[3]):
            layer.bias.copy_(0.05 * torch.randn(layer.bias.shape, generator=gen))
    return model.state_dict()


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("tiny_cnn.pt")
    torch.save(make_state(), out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
