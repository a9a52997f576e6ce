"""BN statistics recomputed per width: the exact mean of each BN's batch statistics."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.models.dfsmn import ModelConfig, batch_norms_at, build_bifsmn, build_teacher, width_model
from bifsmn_tf.training.calibration import recompute_batch_norm_statistics

SMALL = ModelConfig(frontend_channels=4, num_blocks=4, hidden_size=32, memory_size=16, widths=(4, 2, 1))
RNG = np.random.default_rng(0)


def _batches(config: ModelConfig, count: int = 3, size: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    shape = (size, config.num_frames, config.num_features)
    # Each batch at another offset and scale, so that a mean over batches is not any one batch's.
    return [
        ((RNG.normal(size=shape) * (1 + k) + 3 * k).astype("float32"), np.zeros(size, "int32")) for k in range(count)
    ]


def _inputs_seen(model: tf.keras.Model, batches, widths) -> dict[int, list[np.ndarray]]:
    """Every input each BN layer gets when ``widths`` run ``batches`` in training mode."""
    seen: dict[int, list[np.ndarray]] = {}
    call = tf.keras.layers.BatchNormalization.call

    def recording(layer, inputs, *args, **kwargs):
        seen.setdefault(id(layer), []).append(inputs.numpy())
        return call(layer, inputs, *args, **kwargs)

    forwards = [width_model(model, width) for width in widths]
    with mock.patch.object(tf.keras.layers.BatchNormalization, "call", recording):
        for forward in forwards:
            for features, _ in batches:
                forward(features, training=True)
    return seen


@pytest.mark.parametrize("per_width", [True, False])
def test_statistics_are_the_mean_over_batches_and_widths_of_each_bn(per_width):
    config = SMALL.replace(per_width_batch_norm=per_width)
    model = build_bifsmn(config)
    batches = _batches(config)
    widths = config.widths
    seen = _inputs_seen(model, batches, widths)  # training mode reads no moving statistics
    assert recompute_batch_norm_statistics(model, batches, widths, progress=False) == len(batches)

    layers = {id(bn): bn for width in widths for bn in batch_norms_at(model, width)}
    assert set(layers) == set(seen)
    for key, bn in layers.items():
        inputs = [x.reshape(-1, x.shape[-1]) for x in seen[key]]
        # A shared BN runs at every width that runs its block; a width's own BN at that width alone.
        runs = sum(any(other is bn for other in batch_norms_at(model, width)) for width in widths)
        assert len(inputs) == len(batches) * runs
        assert runs == 1 or bn.name.startswith("fe") or not per_width
        means = np.mean([x.mean(axis=0) for x in inputs], axis=0)
        # TF's fused batch norm moves its average towards the unbiased batch variance.
        variances = np.mean([x.var(axis=0, ddof=1) for x in inputs], axis=0)
        np.testing.assert_allclose(bn.moving_mean.numpy(), means, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), variances, rtol=1e-4, atol=1e-5)
        assert bn.momentum == config.bn_momentum


def test_each_width_gets_its_own_statistics_only_with_its_own_bn():
    own, shared = (build_bifsmn(SMALL.replace(per_width_batch_norm=flag)) for flag in (True, False))
    shared.set_weights(_shared_layout(own, shared))
    batches = _batches(SMALL)
    for model in (own, shared):
        recompute_batch_norm_statistics(model, batches, SMALL.widths, progress=False)
    block = "block_3"  # runs at widths 4, 2 and 1
    hidden = {w: own.get_layer(block).batch_norms(w)[1].moving_mean.numpy() for w in (4, 2, 1)}
    assert not np.allclose(hidden[4], hidden[1])
    mixture = shared.get_layer(block).batch_norms(4)[1].moving_mean.numpy()
    np.testing.assert_allclose(mixture, np.mean(list(hidden.values()), axis=0), rtol=1e-4, atol=1e-5)


def _shared_layout(own: tf.keras.Model, shared: tf.keras.Model) -> list[np.ndarray]:
    """``own``'s weights for ``shared``: each shared BN takes the widest width's copy."""
    weights = {w.name.split(":")[0]: w.numpy() for w in own.weights}
    names = [w.name.split(":")[0] for w in shared.weights]
    widest = {
        name: name.replace("memory_bn/", "memory_bn_w4/").replace("hidden_bn/", "hidden_bn_w4/") for name in names
    }
    return [weights.get(name, weights.get(widest[name])) for name in names]


def test_the_teacher_is_calibrated_on_its_one_path():
    teacher = build_teacher(SMALL.for_teacher())
    batches = _batches(SMALL)
    seen = _inputs_seen(teacher, batches, [None])
    recompute_batch_norm_statistics(teacher, batches, [None], progress=False)
    # Block 0's memory BN: the teacher's dropout (training mode) comes after it.
    bn = teacher.get_layer("block_0").batch_norms()[0]
    expected = np.mean([x.reshape(-1, x.shape[-1]).mean(axis=0) for x in seen[id(bn)]], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_no_batches_is_an_error_that_leaves_the_statistics_alone():
    model = build_bifsmn(SMALL.replace(per_width_batch_norm=True))
    before = [w.numpy() for w in model.weights]
    batches = _batches(SMALL)

    calls: list[int] = []

    class Stream:
        def __iter__(self):
            it = iter(batches if not calls else [])
            calls.append(1)
            return it

    with pytest.raises(ValueError, match="no batches"):
        recompute_batch_norm_statistics(model, Stream(), SMALL.widths, progress=False)
    assert len(calls) == 2  # width 4 ran and moved its statistics before width 2 found nothing
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert all(bn.momentum == SMALL.bn_momentum for bn in batch_norms_at(model, 4))
