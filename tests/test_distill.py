"""Distillation losses against a NumPy transcription of the official formulas.

docs/design.md#hed and #fid-bifsmnv2.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.training.distill import (
    HaarHighPass,
    attention_map_loss,
    fid_loss,
    haar_low_pass,
    hed_loss,
    hed_target,
    unbiased_std,
)

SHAPES = [(4, 8, 1, 128), (3, 4, 1, 6), (1, 2, 1, 2), (2, 13, 1, 128), (2, 8, 1, 5), (1, 3, 1, 3)]


def _haar_1d(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    even, odd = np.take(x, range(0, x.shape[axis], 2), axis), np.take(x, range(1, x.shape[axis], 2), axis)
    return (even + odd) / np.sqrt(2), (even - odd) / np.sqrt(2)


def _inverse_haar_1d(low: np.ndarray, high: np.ndarray, axis: int) -> np.ndarray:
    even, odd = (low + high) / np.sqrt(2), (low - high) / np.sqrt(2)
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(low.shape)
    shape[axis] *= 2
    return out.reshape(shape)


def numpy_haar_high_pass(features: np.ndarray) -> np.ndarray:
    """pytorch_wavelets' recipe: one-level 2-D Haar DWT over (time, channel), LL := 0, inverse;
    mode 'zero' pads an odd size with one zero at its end, and the output is cut back."""
    _, time_steps, _, channels = features.shape
    image = np.pad(features[:, :, 0, :], [(0, 0), (0, time_steps % 2), (0, channels % 2)])  # (B, T, C)
    low_t, high_t = _haar_1d(image, axis=1)
    ll, lh = _haar_1d(low_t, axis=2)
    hl, hh = _haar_1d(high_t, axis=2)
    ll = np.zeros_like(ll)
    low_t = _inverse_haar_1d(ll, lh, axis=2)
    high_t = _inverse_haar_1d(hl, hh, axis=2)
    return _inverse_haar_1d(low_t, high_t, axis=1)[:, :time_steps, None, :channels]


def numpy_attention_loss(student: np.ndarray, target: np.ndarray) -> float:
    qs, qt = student.astype(np.float64) ** 2, target.astype(np.float64) ** 2
    return float(np.linalg.norm((qs / np.linalg.norm(qs) - qt / np.linalg.norm(qt)).ravel()))


@pytest.fixture
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("shape", SHAPES)
def test_high_pass_is_the_inverse_dwt_with_zeroed_approximation(rng, shape):
    features = rng.normal(size=shape).astype(np.float32)
    got = HaarHighPass()(tf.constant(features)).numpy()
    np.testing.assert_allclose(got, numpy_haar_high_pass(features), atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_bands_split_the_signal_and_low_pass_is_the_block_mean(rng, shape):
    features = rng.normal(size=shape).astype(np.float32)
    low = haar_low_pass(tf.constant(features)).numpy()
    high = HaarHighPass()(tf.constant(features)).numpy()
    np.testing.assert_allclose(low + high, features, atol=1e-5)
    block_mean = features[:, 0:2, :, 0:2].mean(axis=(1, 3))
    np.testing.assert_allclose(low[:, 1, :, 1], block_mean, atol=1e-5)
    if shape[1] % 2:  # the last row pairs with a zero row
        last = features[:, -1:, :, 0:2].sum(axis=(1, 3)) / 4
        np.testing.assert_allclose(low[:, -1, :, 0], last, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 8, 2, 128), (2, 8, 128)])
def test_high_pass_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="T|shape"):
        HaarHighPass()(tf.zeros(shape))


def test_high_pass_round_trips_its_config():
    layer = HaarHighPass(name="hp")
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, HaarHighPass) and clone.name == "hp"


def test_unbiased_std_matches_bessel_corrected_numpy(rng):
    values = rng.normal(3.0, 2.0, size=(5, 8, 1, 16)).astype(np.float32)
    np.testing.assert_allclose(unbiased_std(tf.constant(values)).numpy(), values.std(ddof=1), rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_hed_target_is_normalised_high_pass_plus_normalised_features(rng, shape):
    features = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    high = numpy_haar_high_pass(features)
    expected = high / high.std(ddof=1) + features / features.std(ddof=1)
    np.testing.assert_allclose(hed_target(tf.constant(features)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_attention_loss_matches_formula_and_is_scale_invariant(rng):
    student = rng.normal(size=(4, 8, 1, 128)).astype(np.float32)
    target = rng.normal(size=(4, 8, 1, 128)).astype(np.float32)
    loss = attention_map_loss(tf.constant(student), tf.constant(target)).numpy()
    np.testing.assert_allclose(loss, numpy_attention_loss(student, target), rtol=1e-5)
    scaled = attention_map_loss(tf.constant(3.0 * student), tf.constant(target)).numpy()
    np.testing.assert_allclose(scaled, loss, rtol=1e-5)


def test_attention_loss_of_identical_maps_is_zero_with_finite_gradient(rng):
    features = tf.Variable(rng.normal(size=(2, 8, 1, 16)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = attention_map_loss(features, tf.identity(features))
    grad = tape.gradient(loss, features)
    assert loss.numpy() == pytest.approx(0.0, abs=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_hed_loss_sums_block_losses_and_passes_no_gradient_to_the_teacher(rng):
    students = [tf.constant(rng.normal(size=(4, 8, 1, 128)), tf.float32) for _ in range(2)]
    teacher = tf.Variable(rng.normal(size=(4, 8, 1, 128)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = hed_loss(students, [hed_target(teacher), hed_target(teacher)])
    target = hed_target(teacher).numpy()
    expected = sum(numpy_attention_loss(s.numpy(), target) for s in students)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert tape.gradient(loss, teacher) is None


def test_hed_loss_needs_matching_block_lists():
    with pytest.raises(ValueError, match="one teacher block per student block"):
        hed_loss([tf.zeros((1, 8, 1, 4))], [])


def test_fid_loss_matches_both_bands_plus_logits_mse(rng):
    students = [rng.normal(size=(3, 8, 1, 32)).astype(np.float32) for _ in range(2)]
    teachers = [rng.normal(size=(3, 8, 1, 32)).astype(np.float32) for _ in range(2)]
    z_s, z_t = rng.normal(size=(3, 12)).astype(np.float32), rng.normal(size=(3, 12)).astype(np.float32)
    expected = float(np.mean((z_s - z_t) ** 2))
    for s, t in zip(students, teachers):
        s_high, t_high = numpy_haar_high_pass(s), numpy_haar_high_pass(t)
        expected += numpy_attention_loss(s_high, t_high) + numpy_attention_loss(s - s_high, t - t_high)
    got = fid_loss(
        [tf.constant(s) for s in students], [tf.constant(t) for t in teachers], tf.constant(z_s), tf.constant(z_t)
    )
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)
