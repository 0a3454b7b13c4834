"""minicam.recipes: the training recipe of the bundled models, on tiny runs (the bundled models are never retrained here)."""

import numpy as np
import pytest

from minicam import io, recipes, zoo


def test_train_reference_tiny_run_is_deterministic():
    a, meta = recipes.train_reference("digits", "gap", epochs=1, n_train=32, seed=5, verbose=False)
    b, _ = recipes.train_reference("digits", "gap", epochs=1, n_train=32, seed=5, verbose=False)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key], err_msg=key)
        assert value.dtype == np.float32
    assert not a.training
    assert meta["input_shape"] == [1, 32, 32] and meta["class_names"] == [str(d) for d in range(10)]
    assert meta["dataset_kwargs"] == {"split": "train"} and meta["heldout"]["kwargs"] == {"split": "test"}
    assert 0.0 <= meta["heldout_accuracy"] <= 1.0


def test_train_reference_features_from_freezes_the_blocks(tmp_path):
    source = zoo.gap_net(rng=3).eval()
    io.save(source, tmp_path / "gap.npz")
    model, meta = recipes.train_reference(
        "shapes", "fc", epochs=1, batch_size=8, n_train=16, features_from=tmp_path / "gap.npz", verbose=False
    )
    src = source.state_dict()
    for key, value in model.state_dict().items():
        if key.split(".")[0] in meta["training"]["frozen_layers"]:
            np.testing.assert_array_equal(value, src[key].astype(np.float32), err_msg=key)
    fresh = zoo.fc_net(rng=0, dtype=np.float32).state_dict()
    assert not np.array_equal(model.state_dict()["fc1.W"], fresh["fc1.W"])
    with pytest.raises(ValueError, match="features_from.*'conv4'"):
        io.save(zoo.gap_net(widths=(16, 16, 32), rng=0), tmp_path / "short.npz")
        recipes.train_reference("shapes", "fc", epochs=1, n_train=8, features_from=tmp_path / "short.npz", verbose=False)


def test_train_reference_bad_names():
    with pytest.raises(ValueError, match=r"dataset must be one of \['digits', 'shapes'\], got 'scenes'"):
        recipes.train_reference("scenes", "gap")
    with pytest.raises(ValueError, match=r"architecture must be one of \['embed', 'fc', 'gap'\], got 'resnet'"):
        recipes.train_reference("shapes", "resnet")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        recipes.train_reference("shapes", "gap", batch_size=0)
