"""No side effects: explaining writes nothing the caller owns and changes nothing it will see later.

Over every public explanation method:

- read-only inputs and read-only weights work (nothing is written into them:
  NumPy would raise on a write);
- after a call, mutating the input or a returned map does not change the next
  call's result (no cache keeps an alias of the caller's array that a later
  call reads);
- the model's weights, buffers, gradients, modes and cached activations are
  as they were; two calls in a row give bit-identical maps.
"""

import copy

import numpy as np
import pytest
from explain_nets import gap_net, images

import minicam as mc

REF = mc.similarity_target(np.linspace(-1.0, 1.0, 5))

METHODS = {
    "cam": lambda m, x: mc.cam(m, x, 1),
    "grad_cam": lambda m, x: mc.grad_cam(m, x, [1, 2]),
    "grad_cam counterfactual": lambda m, x: mc.grad_cam(m, x, 1, counterfactual=True, relu=False),
    "grad_cam target": lambda m, x: mc.grad_cam(m, x, target=REF),
    "grad_cam_plus_plus": lambda m, x: mc.grad_cam_plus_plus(m, x, 1),
    "hires_cam": lambda m, x: mc.hires_cam(m, x, None),
    "xgrad_cam": lambda m, x: mc.xgrad_cam(m, x, 1, layer="conv2"),
    "layer_cam": lambda m, x: mc.layer_cam(m, x, 1, layer="relu1"),
    "score_cam": lambda m, x: mc.score_cam(m, x, 1),
    "eigen_cam": lambda m, x: mc.eigen_cam(m, x, center=True),
    "saliency": lambda m, x: mc.saliency(m, x, 1, score="softmax"),
    "saliency_map": lambda m, x: mc.saliency_map(mc.saliency(m, x, 1)),
    "guided_backprop": lambda m, x: mc.guided_backprop(m, x, 1),
    "deconvnet": lambda m, x: mc.deconvnet(m, x, 1),
    "guided_grad_cam": lambda m, x: mc.guided_grad_cam(m, x, 1),
    "occlusion": lambda m, x: mc.occlusion(m, x, 1, window=3, stride=2, baseline=np.full(x.shape, 0.5)),
    "smoothgrad": lambda m, x: mc.smoothgrad(mc.saliency, m, x, 1, n_samples=3, rng=0),
    "upsample+normalize": lambda m, x: mc.normalize(mc.upsample(mc.grad_cam(m, x, 1, relu=False), x.shape[2:])),
}


def model_state(model):
    """Everything explaining could change: parameters, buffers, gradients, modes, cached outputs (deep copies)."""
    return {
        "params": {f"{n}.{k}": v.copy() for n, layer in model for k, v in layer.params.items()},
        "grads": {f"{n}.{k}": v.copy() for n, layer in model for k, v in layer.grads.items()},
        "buffers": {f"{n}.{k}": v.copy() for n, layer in model for k, v in layer.buffers.items()},
        "modes": [layer.training for layer in model.layers] + [model.training],
        "outputs": {k: v.copy() for k, v in model.outputs.items()},
    }


def assert_same_state(a, b):
    assert a["modes"] == b["modes"]
    for key in ("params", "grads", "buffers", "outputs"):
        assert a[key].keys() == b[key].keys(), key
        for name in a[key]:
            np.testing.assert_array_equal(a[key][name], b[key][name], err_msg=f"{key} {name}")


def read_only_model(seed=0, batchnorm=True):
    model = gap_net(seed, batchnorm=batchnorm)
    for layer in model.layers:
        for store in (layer.params, layer.buffers):
            for value in store.values():
                value.flags.writeable = False
    return model


def read_only_images(n=2, seed=1):
    x = images(n, seed)
    x.flags.writeable = False
    return x


@pytest.mark.parametrize("name", METHODS)
def test_read_only_inputs_and_weights_are_never_written(name):
    model, x = read_only_model(), read_only_images()
    x_before = x.copy()
    out = METHODS[name](model, x)  # a write into x or a weight would raise "assignment destination is read-only"
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(x, x_before)
    assert not x.flags.writeable


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-mode BatchNorm"])
@pytest.mark.parametrize("name", METHODS)
def test_explaining_leaves_the_model_as_it_was_and_repeats_bit_for_bit(name, training):
    model = gap_net(0, batchnorm=True).train(training)
    x = images(2, 1)
    model.forward(images(3, 5))  # a caller's own forward/backward in progress: its caches and grads must survive
    model.backward(np.ones((3, 5)))
    before = model_state(model)
    first = METHODS[name](model, x)
    assert_same_state(before, model_state(model))
    second = METHODS[name](model, x)
    np.testing.assert_array_equal(first, second)  # bit-identical, not merely close
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("name", METHODS)
def test_mutating_the_input_or_the_result_after_a_call_changes_no_later_result(name):
    model = gap_net(0, batchnorm=True)
    x = images(2, 1)
    first = METHODS[name](model, x)
    kept = first.copy()
    x += 1000.0        # the caller reuses its buffer ...
    first[...] = -7.0  # ... and scribbles on the map it got back
    x -= 1000.0        # (the same values again, up to rounding: compare with a fresh copy)
    again = METHODS[name](model, images(2, 1))
    np.testing.assert_array_equal(again, kept)


def test_returned_arrays_share_no_memory_with_the_input_or_the_model():
    model, x = gap_net(0), images(2, 1)
    arrays = [value for _, layer in model for value in list(layer.params.values()) + list(layer.buffers.values())]
    arrays.append(x)
    for name, method in METHODS.items():
        out = method(model, x)
        for a in arrays:
            assert not np.shares_memory(out, a), name


def test_targets_copy_their_reference():
    ref = np.linspace(-1.0, 1.0, 5)
    model, x = gap_net(0), images(2, 1)
    target = mc.similarity_target(ref)
    first = mc.grad_cam(model, x, target=target)
    ref[:] = 1.0  # the caller changes its array after building the target
    np.testing.assert_array_equal(mc.grad_cam(model, x, target=target), first)


def test_post_processing_leaves_its_input_alone():
    maps = np.random.default_rng(0).standard_normal((2, 4, 5))
    maps.flags.writeable = False
    before = maps.copy()
    up = mc.upsample(maps, (4, 5), "nearest")  # the same size: still a new array
    norm = mc.normalize(maps)
    np.testing.assert_array_equal(maps, before)
    assert not np.shares_memory(up, maps) and not np.shares_memory(norm, maps)


def test_gradient_checks_leave_their_arguments_alone():
    from minicam import gradcheck as gc

    layer = mc.Conv2d(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 5))
    x.flags.writeable = False
    snapshot = copy.deepcopy(layer)
    gc.check_layer(layer, x)
    for key in layer.params:
        np.testing.assert_array_equal(layer.params[key], snapshot.params[key])


def test_the_state_comparison_can_fail():
    # the checker itself sees a moved BatchNorm statistic and a switched mode
    model = gap_net(0, batchnorm=True)
    model.forward(images(2, 1))
    before = model_state(model)
    model.train().forward(images(2, 1))  # a training-mode forward moves the running statistics
    with pytest.raises(AssertionError):
        assert_same_state(before, model_state(model))
