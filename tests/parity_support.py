"""Shared by the PyTorch/captum parity tests: importing the optional frameworks, recording differences.

- :func:`require` imports torch/captum, or skips the module with the command
  that enables it -- unless the environment variable ``CI`` is set, where a
  missing framework is an error, so CI can never pass by skipping.
- :class:`Differences` asserts each compared quantity within a tolerance and
  keeps the largest difference per quantity, printed at the end of the module.
"""

import importlib
import os

import numpy as np
import pytest

from minicam import gradcheck as gc

ENABLE = "pip install torch==2.13.0 captum"


def ci_is_set():
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(name, purpose):
    """Import ``name``; without it skip the calling module (fail when ``CI`` is set)."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        if ci_is_set():
            raise ImportError(
                f"CI is set, so the PyTorch parity tests must run, but {name!r} cannot be imported ({err}); "
                f"the CI requirements must install it ({ENABLE})"
            ) from err
        pytest.skip(f"{name} is not installed: `{ENABLE}` to run {purpose}", allow_module_level=True)


def numpy_of(t):
    """A torch tensor (or anything array-like) as a NumPy array."""
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


class Differences:
    """Largest relative and absolute difference per quantity, across one test module.

    Parameters
    ----------
    other : str
        Name of the framework compared with, for messages ("torch", "captum/torch").
    """

    def __init__(self, other):
        self.other = other
        self.measured = {}  # quantity -> [largest relative, largest absolute, where]

    def check(self, quantity, mine, theirs, tol, where):
        """Record the difference of one quantity and assert it is within ``tol`` (norm-wise relative)."""
        mine = np.asarray(mine)
        theirs = numpy_of(theirs)
        assert mine.shape == theirs.shape, f"{where}: {quantity}: minicam shape {mine.shape}, {self.other} shape {theirs.shape}"
        rel = gc.rel_error(mine, theirs)
        absolute = float(np.abs(mine - theirs).max()) if mine.size else 0.0
        best = self.measured.get(quantity)
        if best is None or rel > best[0]:
            self.measured[quantity] = [rel, absolute if best is None else max(absolute, best[1]), where]
        elif absolute > best[1]:
            best[1] = absolute
        if rel > tol:
            worst = np.unravel_index(np.abs(mine - theirs).argmax(), mine.shape)
            pytest.fail(
                f"{where}: {quantity} differs from {self.other}: relative {rel:.3e} > {tol:.0e}, abs {absolute:.3e}; "
                f"at index {worst}: minicam {mine[worst]!r}, {self.other} {theirs[worst]!r}"
            )

    def write_report(self, request, title):
        """Print the table of largest differences (shown with and without ``-s``)."""
        if not self.measured:
            return
        lines = [title]
        width = max(len(q) for q in self.measured)
        for quantity, (rel, absolute, where) in sorted(self.measured.items()):
            lines.append(f"  {quantity:<{width}}  rel {rel:9.2e}  abs {absolute:9.2e}  ({where})")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("")
                for line in lines:
                    reporter.write_line(line)


def zoo_models(rng, prepare=None):
    """(label, model, x) for both parity modules: the zoo's reference architectures and every bundled model.

    ``zoo.gap_net`` / ``zoo.fc_net`` with random He weights on a non-square
    input (``prepare(model)`` may set their mode or randomise their biases),
    then every bundled model in eval mode on inputs in [0, 1]. The bundled
    files are part of the repository: a missing one is an error, not a skip.
    """
    from minicam import zoo

    prepare = prepare or (lambda m: m)
    models = [
        ("zoo.gap_net()", prepare(zoo.gap_net(rng=0)), rng.standard_normal((2, 3, 32, 24))),
        ("zoo.fc_net(input_size=(32, 24))", prepare(zoo.fc_net(input_size=(32, 24), rng=1)),
         rng.standard_normal((2, 3, 32, 24))),
    ]
    for name, info in zoo.PRETRAINED.items():
        if info["architecture"] == "embed":
            # The torch bridge converts classifiers' layers; the embedding head's L2Normalize
            # has no nn module. Its blocks are shapes-gap's (checked here), and L2Normalize is
            # checked against torch.nn.functional.normalize in test_parity_torch.py.
            continue
        x = rng.uniform(0.0, 1.0, (2,) + tuple(info["input_shape"]))
        models.append((f"zoo.pretrained({name!r})", zoo.pretrained(name).eval(), x))
    return models
