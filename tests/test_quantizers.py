"""Binarizers: forward values, gradients and config round trips against NumPy references."""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.models import quantizers as q

RNG = np.random.default_rng(7)


def _forward_and_grad(quantizer, values: np.ndarray, upstream: np.ndarray | None = None):
    x = tf.Variable(values)
    with tf.GradientTape() as tape:
        out = quantizer(x)
        loss = tf.reduce_sum(out * (upstream if upstream is not None else 1.0))
    variables = [x, *quantizer.trainable_weights]
    grads = tape.gradient(loss, variables)
    return out.numpy(), [None if g is None else g.numpy() for g in grads]


def _sign(values: np.ndarray) -> np.ndarray:
    return np.where(values >= 0, 1.0, -1.0)


@pytest.mark.parametrize(
    ("shape", "channel_axes", "reduce_axes"),
    [
        ((1, 1, 16, 8), (-1,), (0, 1, 2)),  # 1x1 conv: one scale per output channel
        ((5, 5, 4, 8), (-1,), (0, 1, 2)),  # fe3-like 5x5
        ((5, 1, 6, 1), (-2, -1), (0, 1)),  # depthwise memory kernel: per channel (axis -2)
    ],
)
def test_channel_scaled_sign_is_sign_times_channel_mean_magnitude(shape, channel_axes, reduce_axes):
    weights = RNG.normal(scale=0.8, size=shape).astype("float32")
    out, (grad,) = _forward_and_grad(q.ChannelScaledSign(channel_axes=channel_axes), weights)
    scale = np.abs(weights).mean(axis=reduce_axes, keepdims=True)
    np.testing.assert_allclose(out, _sign(weights) * scale, rtol=1e-6)
    # Clipped straight-through gradient; the scale is detached.
    np.testing.assert_allclose(grad, (np.abs(weights) <= 1.0) * scale, rtol=1e-6)


def test_official_scale_leaves_1x1_kernels_full_precision():
    """Spec 3.3: per-(out, in) scales after global centring give W - mean(W) for 1x1 kernels."""
    weights = RNG.normal(size=(1, 1, 16, 8)).astype("float32")
    out = q.kernel_quantizer("bifsmn", "official")(tf.constant(weights)).numpy()
    np.testing.assert_allclose(out, weights - weights.mean(), rtol=1e-5, atol=1e-6)
    binary = q.kernel_quantizer("bifsmn", "output_channel")(tf.constant(weights)).numpy()
    assert len(np.unique(np.abs(binary).round(6))) == 8  # one magnitude per output channel


def test_pixel_scaled_sign_scales_each_pixel_by_its_channel_mean():
    x = RNG.normal(size=(2, 8, 1, 16)).astype("float32")
    out, (grad,) = _forward_and_grad(q.PixelScaledSign(), x)
    scale = np.abs(x).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(out, _sign(x) * scale, rtol=1e-6)
    np.testing.assert_allclose(grad, (np.abs(x) <= 1.0) * scale, rtol=1e-6)


@pytest.mark.parametrize("progress", [0.0, 0.5, 1.0])
def test_ede_gradient_follows_the_schedule(progress):
    x = np.linspace(-2, 2, 41, dtype="float32")
    quantizer = q.EDESign()
    quantizer(tf.constant(x))  # builds the progress weight
    model = tf.keras.Sequential([tf.keras.Input((41,)), quantizer])
    assert q.set_training_progress(model, progress) == 1
    out, (grad,) = _forward_and_grad(quantizer, x)
    t = 0.1 * (10.0 / 0.1) ** progress
    k = max(1.0 / t, 1.0)
    np.testing.assert_array_equal(out, _sign(x))
    np.testing.assert_allclose(grad, k * t * (1 - np.tanh(t * x) ** 2), rtol=1e-5, atol=1e-5)


def test_set_training_progress_rejects_out_of_range():
    with pytest.raises(ValueError, match="progress"):
        q.set_training_progress(tf.keras.Sequential([tf.keras.Input((1,))]), 1.5)


def test_libra_sign_balances_and_scales_by_powers_of_two():
    weights = (RNG.normal(size=(1, 1, 32, 8)) + 0.3).astype("float32")
    out = q.LibraSign()(tf.constant(weights)).numpy()
    centred = weights - weights.mean(axis=(0, 1, 2), keepdims=True)
    np.testing.assert_array_equal(np.sign(out), _sign(centred))
    magnitudes = np.abs(out).reshape(-1, 8)
    assert np.all(magnitudes == magnitudes[0])  # one magnitude per output channel
    np.testing.assert_array_equal(np.log2(magnitudes[0]), np.round(np.log2(magnitudes[0])))


def test_threshold_sign_shifts_by_its_learned_threshold():
    x = RNG.normal(size=(2, 4, 1, 3)).astype("float32")
    quantizer = q.ThresholdSign()
    quantizer(tf.constant(x))
    quantizer.threshold.assign([0.5, -0.5, 0.0])
    shifted = x - np.array([0.5, -0.5, 0.0], dtype="float32")
    out, (grad_x, grad_threshold) = _forward_and_grad(quantizer, x)
    np.testing.assert_array_equal(out, _sign(shifted))
    approx = np.where(np.abs(shifted) <= 1, 2 - 2 * np.abs(shifted), 0)
    np.testing.assert_allclose(grad_x, approx, rtol=1e-5)
    np.testing.assert_allclose(grad_threshold, -approx.sum(axis=(0, 1, 2)), rtol=1e-5)


def test_dual_scale_sign_matches_the_lpb_formula_and_learns_its_backward():
    x = RNG.normal(size=(2, 4, 1, 6)).astype("float32")
    quantizer = q.DualScaleSign()
    quantizer(tf.constant(x))
    tau0, tau1, tau2 = (t.numpy() for t in quantizer.thresholds)
    assert len({tuple(tau0), tuple(tau1), tuple(tau2)}) == 3  # independently initialised
    quantizer.alphas[0].assign(0.7)
    out, grads = _forward_and_grad(quantizer, x)
    first = _sign(0.7 * (x - tau0))
    residual = x - first - tau1
    scale = np.abs(residual).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(out, first + scale * _sign(residual) - tau2, rtol=1e-5, atol=1e-6)
    assert all(g is not None and np.any(g != 0) for g in grads)  # x, tau0..2, alpha1, alpha2


def test_learned_backward_kernel_gradient_is_that_of_the_clipped_product():
    weights = RNG.normal(scale=1.5, size=(1, 1, 8, 4)).astype("float32")
    quantizer = q.LearnedBackwardScaledSign()
    quantizer(tf.constant(weights))
    quantizer.alpha.assign(0.5)
    out, (grad_w, grad_alpha) = _forward_and_grad(quantizer, weights)
    scale = np.abs(weights).mean(axis=(0, 1, 2), keepdims=True)
    inside = np.abs(0.5 * weights) <= 1
    np.testing.assert_allclose(out, _sign(weights) * scale, rtol=1e-6)
    np.testing.assert_allclose(grad_w, scale * 0.5 * inside, rtol=1e-5)
    np.testing.assert_allclose(grad_alpha, (scale * weights * inside).sum(), rtol=1e-4)


@pytest.mark.parametrize("binarizer", q.BINARIZERS)
@pytest.mark.parametrize("role", ["input", "kernel", "depthwise"])
def test_every_binarizer_quantizer_round_trips_its_config(binarizer, role):
    if role == "input":
        quantizer = q.input_quantizer(binarizer)
        x = RNG.normal(size=(2, 8, 1, 16)).astype("float32")
    else:
        quantizer = q.kernel_quantizer(binarizer, depthwise=role == "depthwise")
        x = RNG.normal(size=(5, 1, 16, 1) if role == "depthwise" else (1, 1, 16, 8))
        x = x.astype("float32")
    assert quantizer.precision in (1, 2)
    restored = lq.quantizers.get(lq.quantizers.serialize(quantizer))
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()
    out = quantizer(tf.constant(x))
    restored(tf.constant(x))
    restored.set_weights(quantizer.get_weights())
    np.testing.assert_array_equal(restored(tf.constant(x)).numpy(), out.numpy())
    if role != "input":
        # One magnitude per output channel: what LCE's binary-filter check accepts.
        channels = out.numpy().reshape(-1, x.shape[-2] if role == "depthwise" else x.shape[-1])
        assert np.allclose(np.abs(channels), np.abs(channels[:1]), rtol=1e-6)


def test_unknown_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="bifsmn, bnn"):
        q.input_quantizer("dorefa")
    with pytest.raises(ValueError, match="output_channel"):
        q.kernel_quantizer("bifsmn", "per_tensor")


def test_the_registry_describes_each_method_by_its_name():
    assert list(q.BINARIZERS) == ["bifsmn", "bnn", "xnor", "bireal", "irnet", "reactnet", "lpb"]
    assert all(name == method.name for name, method in q.BINARIZERS.items())
    assert [b for b, method in q.BINARIZERS.items() if method.rprelu] == ["reactnet"]
    assert q.SIGN_INPUT_BINARIZERS == ("bifsmn", "bnn", "bireal", "irnet")
    # The weight scale applies to the mean-magnitude methods only.
    for name, method in q.BINARIZERS.items():
        official = q.kernel_quantizer(name, "official")
        assert (isinstance(official, q.ChannelScaledSign) and official.centered) is method.mean_scaled
