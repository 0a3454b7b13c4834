"""minicam.metrics: identities and where a map points, each on a hand-checkable case."""

import numpy as np

from minicam import metrics, zoo
from minicam.explain import grad_cam


def test_identity_error_is_rounding_on_a_random_gap_model(rng):
    model = zoo.gap_net(in_channels=3, num_classes=5, widths=(4, 6), rng=3)
    err, scale, hw = metrics.identity_error(model, rng.random((3, 3, 10, 14)))
    assert hw == (5, 7)
    assert scale > 0 and err < 1e-12 * max(scale, 1.0)


def test_peak_object_names_mask_box_neither_and_flat():
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, 1:4, 1:4] = True
    masks[1, 6:9, 5:8] = True
    boxes = np.array([[1, 1, 4, 4], [4, 5, 9, 9]])  # object 1's box is wider than its mask
    cam = np.zeros((10, 10))
    cam[2, 2] = 1.0
    assert metrics.peak_object(cam, masks, boxes) == (0, "mask", (2, 2))
    cam = np.zeros((10, 10))
    cam[6, 4] = 1.0
    assert metrics.peak_object(cam, masks, boxes) == (1, "box", (6, 4))
    cam = np.zeros((10, 10))
    cam[9, 0] = 1.0
    assert metrics.peak_object(cam, masks, boxes) == (None, "neither", (9, 0))
    assert metrics.peak_object(np.zeros((10, 10)), masks, boxes)[:2] == (None, "flat")


def test_pointing_rate_equals_hits_counted_by_hand():
    from minicam import datasets
    from minicam.explain.postprocess import upsample

    model = zoo.gap_net(in_channels=3, num_classes=4, widths=(4, 6), rng=0).eval()  # per-image = batched
    sc = datasets.scenes(4, seed=0)
    res = metrics.pointing_rate(model, sc)
    in_box = in_mask = 0
    for i in range(4):
        for k in range(2):
            m = upsample(grad_cam(model, sc.images[i : i + 1], int(sc.labels[i, k])), sc.images.shape[2:])[0]
            if m.max() == m.min():
                continue
            row, col = np.unravel_index(np.argmax(m), m.shape)
            x0, y0, x1, y1 = sc.boxes[i, k]
            in_box += x0 <= col < x1 and y0 <= row < y1
            in_mask += bool(sc.masks[i, k, row, col])
    assert res == {"box": in_box / 8, "mask": in_mask / 8, "objects": 8}
