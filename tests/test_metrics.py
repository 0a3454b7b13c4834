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


# -- the papers' metrics, each on an example small enough to check by hand ------

import pytest  # noqa: E402

import minicam as mc  # noqa: E402


def test_label_components_joins_diagonals_and_numbers_in_row_major_order():
    mask = np.array([
        [1, 0, 0, 1, 1],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ], dtype=bool)
    labels, count = metrics.label_components(mask)
    assert count == 4   # {(0,0),(1,1)} diagonal, {(0,3),(0,4)}, {(2,3),(3,4)} diagonal, {(3,0)}
    assert labels.tolist() == [
        [1, 0, 0, 2, 2],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 3, 0],
        [4, 0, 0, 0, 3],
    ]
    assert metrics.label_components(np.zeros((3, 3), dtype=bool))[1] == 0


def test_box_from_map_keeps_the_largest_blob_above_the_threshold():
    m = np.zeros((6, 8))
    m[1, 1] = 10.0                  # the maximum, a blob of one pixel
    m[2:5, 4:7] = 2.0               # 9 pixels at 20% of the maximum: the largest blob
    m[5, 0] = 1.0                   # 10%: below 15%
    assert metrics.box_from_map(m) == (4, 2, 7, 5)               # x0, y0, x1, y1 (exclusive)
    assert metrics.box_from_map(m, threshold=0.25) == (1, 1, 2, 2)   # only the peak survives
    assert metrics.box_from_map(m, threshold=0.05)[:2] == (4, 2)      # (5, 0) joins no blob
    assert metrics.box_from_map(np.full((4, 5), 3.0)) == (0, 0, 5, 4)  # flat positive: the whole image
    assert metrics.box_from_map(np.zeros((4, 5))) is None             # no evidence anywhere
    assert metrics.box_from_map(-np.ones((4, 5))) is None


def test_iou_and_localization_by_hand():
    assert metrics.iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)   # 1 pixel shared of 4 + 4 - 1
    assert metrics.iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert metrics.iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0                     # touching, exclusive ends
    assert metrics.iou(None, (0, 0, 2, 2)) == 0.0
    maps = np.zeros((2, 6, 6))
    maps[0, 1:4, 1:4] = 1.0          # box (1, 1, 4, 4)
    maps[1, 0, 0] = 1.0              # box (0, 0, 1, 1)
    boxes = np.array([[1, 1, 4, 3], [0, 0, 2, 2]])
    ious, acc = metrics.localization(maps, boxes)
    assert ious.tolist() == pytest.approx([6 / 9, 1 / 4])
    assert acc == 0.5


def test_pointing_game_hits_on_the_mask_or_within_tolerance():
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[:, 2:4, 2:4] = True
    maps = np.zeros((3, 8, 8))
    maps[0, 3, 3] = 1.0              # on the object
    maps[1, 3, 6] = 1.0              # 3 px right of the object's last column (col 3)
    hits, rate = metrics.pointing_game(maps, masks)                  # maps[2] is flat: a miss
    assert hits.tolist() == [True, False, False] and rate == pytest.approx(1 / 3)
    assert metrics.pointing_game(maps, masks, tolerance=3)[0].tolist() == [True, True, False]
    assert metrics.pointing_game(maps, masks, tolerance=2.9)[0].tolist() == [True, False, False]


def test_energy_in_mask_counts_the_positive_mass():
    maps = np.array([[[1.0, -1.0], [3.0, 0.0]], [[-1.0, -2.0], [0.0, 0.0]]])
    masks = np.array([[[True, False], [False, False]]] * 2)
    energy, mean = metrics.energy_in_mask(maps, masks)
    assert energy.tolist() == [0.25, 0.0]          # 1 of 1 + 3; no positive mass: 0
    assert mean == 0.125


def test_rank_correlation_with_ties_by_hand():
    a = np.array([1.0, 2.0, 2.0, 3.0])   # average ranks 1, 2.5, 2.5, 4
    b = np.array([1.0, 3.0, 2.0, 4.0])   # ranks 1, 3, 2, 4
    # centred ranks (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5): 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert metrics.rank_correlation(a, b) == pytest.approx(3 / np.sqrt(10), abs=1e-15)
    x = np.array([0.1, 5.0, 2.0, 7.0])
    assert metrics.rank_correlation(x, np.exp(x)) == 1.0            # any increasing function
    assert metrics.rank_correlation(x, -x) == -1.0
    assert np.isnan(metrics.rank_correlation(x, np.ones(4)))        # undefined for a constant


def test_rank_correlation_matches_a_direct_count_on_random_ties(rng):
    # An independent definition of the average rank: 1 + #smaller + (#equal - 1) / 2,
    # counted pairwise (no sorting), then Pearson's correlation of the ranks.
    a, b = rng.integers(0, 5, 200).astype(float), rng.integers(0, 7, 200).astype(float)

    def ranks(v):
        return 1 + (v[None, :] < v[:, None]).sum(1) + ((v[None, :] == v[:, None]).sum(1) - 1) / 2

    expected = np.corrcoef(ranks(a), ranks(b))[0, 1]
    assert metrics.rank_correlation(a, b) == pytest.approx(expected, abs=1e-12)


def _tiny_logistic():
    """GAP -> Linear(1, 2) with W = (1, -1): p_0 = sigmoid(2 * mean(x)), checkable by hand."""
    model = mc.Sequential([("gap", mc.GlobalAvgPool2d()), ("fc", mc.Linear(1, 2, rng=0))])
    model["fc"].params["W"] = np.array([[1.0], [-1.0]])
    model["fc"].params["b"] = np.zeros(2)
    return model


def _sigmoid(t):
    return 1 / (1 + np.exp(-t))


def test_deletion_insertion_curves_by_hand():
    model = _tiny_logistic()
    x = np.array([[[[4.0, 0.0], [0.0, 0.0]]]])         # mean 1: p_0 = sigmoid(2)
    maps = np.array([[[9.0, 1.0], [2.0, 3.0]]])         # order: (0,0), (1,1), (1,0), (0,1)
    res = metrics.deletion_insertion(model, x, maps, 0, steps=4)
    s2 = _sigmoid(2.0)
    assert res["fractions"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert res["deletion"][0] == pytest.approx([s2, 0.5, 0.5, 0.5, 0.5])     # the only evidence goes first
    assert res["insertion"][0] == pytest.approx([0.5, s2, s2, s2, s2])
    assert res["deletion_auc"][0] == pytest.approx(0.25 * (s2 + 0.5) / 2 + 0.75 * 0.5)
    assert res["insertion_auc"][0] == pytest.approx(0.25 * (0.5 + s2) / 2 + 0.75 * s2)
    worst = metrics.deletion_insertion(model, x, -maps, 0, steps=4)           # the evidence goes last
    assert worst["deletion_auc"][0] > res["deletion_auc"][0]
    assert worst["insertion_auc"][0] < res["insertion_auc"][0]


def test_average_drop_and_increase_in_confidence_by_hand():
    model = _tiny_logistic()
    x = np.array([[[[4.0, 0.0], [0.0, 0.0]]]] * 3)
    maps = np.array([
        [[1.0, 0.0], [0.0, 0.0]],     # keeps the evidence: O = Y
        [[0.0, 1.0], [1.0, 1.0]],     # blanks it: O = sigmoid(0) = 0.5
        [[0.5, 0.0], [0.0, 1.0]],     # normalised to 0.5 on the evidence: O = sigmoid(1)
    ])
    drops, percent = metrics.average_drop(model, x, maps, 0)
    y = _sigmoid(2.0)
    assert drops == pytest.approx([0.0, (y - 0.5) / y, (y - _sigmoid(1.0)) / y])
    assert percent == pytest.approx(100 * drops.mean())
    increased, pct = metrics.increase_in_confidence(model, x, maps, 0)
    assert increased.tolist() == [False, False, False] and pct == 0.0
    up, pct = metrics.increase_in_confidence(model, x, maps, 1)     # class 1 gains when the evidence goes
    assert up.tolist() == [False, True, True] and pct == pytest.approx(200 / 3)


def _scene_stub(n=3):
    from minicam import datasets

    return datasets.scenes(n, seed=5)


def _peak_on(sc, which):
    """A method(model, x, class_idx) whose map peaks at the centre of object which(i, class_idx[i])."""
    def method(model, x, class_idx):
        maps = np.zeros((len(x),) + x.shape[2:])
        for i, c in enumerate(class_idx):
            x0, y0, x1, y1 = sc.boxes[i, which(i, c)]
            maps[i, (y0 + y1) // 2, (x0 + x1) // 2] = 1.0
        return maps
    return method


def test_class_discrimination_counts_own_and_other_objects():
    sc = _scene_stub()
    model = zoo.gap_net(in_channels=3, num_classes=4, widths=(4,), rng=0)
    right = metrics.class_discrimination(model, _peak_on(sc, lambda i, c: list(sc.labels[i]).index(c)), sc)
    assert (right["own"], right["other"], right["objects"]) == (1.0, 0.0, 6)
    blind = metrics.class_discrimination(model, _peak_on(sc, lambda i, c: 0), sc)   # always object 0
    assert (blind["own"], blind["other"]) == (0.5, 0.5)
    assert blind["energy_own"] == 0.5 and blind["class_correlation"] == 1.0


def test_faithfulness_of_occlusion_itself_is_one(rng):
    model = zoo.gap_net(in_channels=3, num_classes=4, widths=(4, 6), rng=0).eval()
    x = rng.random((2, 3, 8, 8))
    ref = mc.occlusion(model, x, [0, 1], window=2, stride=1)
    rho, mean = metrics.faithfulness(model, lambda m, xx, c: ref.copy(), x, [0, 1], reference=ref)
    assert rho.tolist() == [1.0, 1.0] and mean == 1.0
    rho, _ = metrics.faithfulness(model, lambda m, xx, c: -ref, x, [0, 1], window=2, stride=1)
    assert rho.tolist() == [-1.0, -1.0]


def test_cascading_randomization_leaves_the_model_and_tracks_the_map(rng):
    model = zoo.gap_net(in_channels=3, num_classes=4, widths=(4, 6), rng=0).eval()
    before = {k: v.copy() for k, v in model.named_parameters()} if hasattr(model, "named_parameters") else None
    x = rng.random((3, 3, 12, 12))
    fixed = np.random.default_rng(0).random((3, 12, 12))
    res = metrics.cascading_randomization(model, lambda m, xx, c: fixed, x, None, rng=0, return_maps=True)
    assert res["layers"] == ["fc", "conv2", "conv1"]                     # top down
    assert res["spearman"].tolist() == [1.0] * 3                          # a model-blind map never changes
    assert res["maps"].shape == (4, 3, 12, 12)
    res = metrics.cascading_randomization(model, mc.saliency, x, 1, rng=0)
    assert res["per_image"].shape == (3, 3) and np.all(np.abs(res["spearman"]) < 1)
    after = dict(model.named_parameters())
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.box_from_map(np.ones((4, 4)), threshold=0.0), r"threshold must be in \(0, 1\], got 0.0"),
    (lambda: metrics.box_from_map(np.ones((4, 4)), threshold=1.5), r"threshold must be in \(0, 1\], got 1.5"),
    (lambda: metrics.box_from_map(np.ones((1, 4, 4))), r"m must be 2-D, got shape \(1, 4, 4\)"),
    (lambda: metrics.localization(np.ones((2, 4, 4)), np.array([[0, 0, 2, 2]])), r"boxes must have shape"),
    (lambda: metrics.localization(np.ones((1, 4, 4)), np.array([[0, 0, 5, 2]])), r"boxes\[0\] must lie inside"),
    (lambda: metrics.localization(np.ones((1, 4, 4)), np.array([[2, 0, 2, 2]])), r"boxes\[0\] must have x1 > x0"),
    (lambda: metrics.localization(np.ones((1, 4, 4)), np.array([[0, 0, 2, 2]]), iou_threshold=0),
     r"iou_threshold must be in \(0, 1\]"),
    (lambda: metrics.localization(np.ones((1, 2, 2)), np.array([[0, 0, 2, 2]]), iou_threshold=2),
     r"iou_threshold must be in \(0, 1\], got 2"),
    (lambda: metrics.localization(np.ones((2, 2)), np.array([[0, 0, 2, 2]])), r"maps must be image-sized maps"),
    (lambda: metrics.localization(np.ones((0, 4, 4)), np.zeros((0, 4))), r"empty batch"),
    (lambda: metrics.pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 5), dtype=bool)), r"masks must have the shape"),
    (lambda: metrics.pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 4))), r"masks must be a boolean ndarray"),
    (lambda: metrics.pointing_game(np.ones((1, 4, 4)), np.zeros((1, 4, 4), dtype=bool)), r"masks\[0\] is empty"),
    (lambda: metrics.pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 4), dtype=bool), tolerance=-1),
     r"tolerance must be >= 0.0, got -1.0"),
    (lambda: metrics.energy_in_mask(np.ones((1, 4, 4)), np.ones((1, 3, 4), dtype=bool)), r"masks must have the shape"),
    (lambda: metrics.rank_correlation(np.ones(3), np.ones(4)), r"a and b must have the same shape"),
    (lambda: metrics.iou((0, 0, 2, 2), (3, 0, 1, 2)), r"box_b must have x1 > x0"),
])
def test_bad_input_names_the_argument_and_the_value(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_methods_and_maps_for_the_model_metrics(rng):
    model = _tiny_logistic()
    x = rng.random((2, 1, 4, 4))
    maps = rng.random((2, 4, 4))
    keep = x.copy(), maps.copy()
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\) = \(2, 4, 4\) for x"):
        metrics.deletion_insertion(model, x, maps[:, :3], 0)
    with pytest.raises(ValueError, match=r"class_idx must be in \[0, 2\)"):
        metrics.average_drop(model, x, maps, 5)
    with pytest.raises(ValueError, match=r"steps must be >= 1, got 0"):
        metrics.deletion_insertion(model, x, maps, 0, steps=0)
    with pytest.raises(ValueError, match=r"method <lambda> must return maps .* got shape \(2, 4\)"):
        metrics.faithfulness(model, lambda m, xx, c: np.ones((2, 4)), x, 0, reference=maps)
    with pytest.raises(ValueError, match=r"must be an input map \(N, C, 4, 4\)"):
        metrics.faithfulness(model, lambda m, xx, c: np.ones((2, 1, 3, 3)), x, 0, reference=maps)
    with pytest.raises(TypeError, match=r"method must be a callable"):
        metrics.faithfulness(model, "grad-cam", x, 0, reference=maps)
    with pytest.raises(TypeError, match=r"scenes must be a Dataset"):
        metrics.class_discrimination(model, mc.saliency, x)
    assert np.array_equal(x, keep[0]) and np.array_equal(maps, keep[1])
