"""Outlier maths: image statistics on crafted images, robust z per class with a floor, a fixed seed repeats."""

import numpy as np

from poisonlab import datasets
from poisonlab.defences import outliers


def test_statistics_of_crafted_images():
    white = np.full((1, 4, 4, 1), 255, np.uint8)
    checker = (np.indices((4, 4)).sum(0) % 2 * 255).astype(np.uint8)[None, :, :, None]
    half = np.zeros((1, 4, 4, 1), np.uint8)
    half[0, :2] = 100
    stats = dict(zip(["white", "checker", "half"], outliers.image_statistics(np.concatenate([white, checker, half]), (0, 255))))
    np.testing.assert_allclose(stats["white"], [1, 0, 0, 1, 0])
    np.testing.assert_allclose(stats["checker"], [0.5, 0.5, 0.5, 0.5, 1])
    np.testing.assert_allclose(stats["half"], [50 / 255, 50 / 255, 0.5, 0, (100 / 255) / 6], rtol=1e-6)


def test_robust_z_is_per_class_with_a_floor_and_small_classes_use_everyone():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.2, 0.05, 100), rng.normal(0.8, 0.05, 100), [0.8, 0.8, 0.8]])[:, None]
    groups = np.repeat([0, 1, 2], [100, 100, 3])
    values[0] = 0.8  # normal for class 1, far out for class 0
    z, centre = outliers.robust_z(values, groups)
    assert z[0, 0] > 6 and abs(z[150, 0]) < 4 and abs(centre[0, 0] - 0.2) < 0.02 and abs(centre[150, 0] - 0.8) < 0.02
    assert centre[-1, 0] == np.median(values)  # 3 items: compared with the whole set
    flat = np.zeros((50, 1))
    flat[0] = 0.05
    z, _ = outliers.robust_z(flat, np.zeros(50, np.int64))
    assert z[0, 0] == 0.05 / outliers.MIN_SCALE and not z[1:].any()


def test_isolation_scores_repeat_per_seed_and_isolate_noise(shared_data):
    x = datasets.load("mnist", shared_data, 1000, download=False).x_train.copy()
    x[7] = np.random.default_rng(1).integers(0, 256, x[7].shape, dtype=np.uint8)
    stats = outliers.image_statistics(x, (0, 255))
    first, again, other = (outliers.isolation_scores(x, stats, seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.argmax() == 7 and 0 < first.min() and first.max() < 1
