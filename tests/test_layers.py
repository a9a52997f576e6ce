"""D-FSMN layers: shapes, NumPy-checked memory, skip and branch wiring, config and save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.layers import (
    DFSMNBlock,
    MemoryBlock,
    RPReLU,
    SlopeFloor,
    ThresholdCopies,
    activation_layer,
)

RNG = np.random.default_rng(3)


def _binary(binarizer: str = "bifsmn") -> dict[str, Any]:
    return dict(
        input_quantizer=quantizers.input_quantizer(binarizer),
        kernel_quantizer=quantizers.kernel_quantizer(binarizer),
        depthwise_quantizer=quantizers.kernel_quantizer(binarizer, depthwise=True),
        kernel_constraint="weight_clip",
    )


def run_layer_test(
    layer: tf.keras.layers.Layer,
    input_shape: tuple[int, ...],
    tmp_path: Path,
    call_kwargs: dict[str, Any] | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Like Keras's ``layer_test``: build ``layer`` in a functional model, check that the output
    has ``output_shape`` (default: the input's), that ``from_config(get_config())`` reproduces
    the config, and that the model survives a JSON round trip and a SavedModel save/load with
    identical outputs."""
    x = RNG.normal(size=input_shape).astype("float32")
    inputs = tf.keras.Input(input_shape[1:])
    model = tf.keras.Model(inputs, layer(inputs, **(call_kwargs or {})))
    model(x, training=True)  # moves the BN statistics away from their initial values
    expected = model.predict(x, verbose=0)
    assert expected.shape == (output_shape or input_shape)
    assert tuple(model.output_shape[1:]) == expected.shape[1:]

    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config

    rebuilt = tf.keras.models.model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)

    model.save(tmp_path / "saved", save_format="tf")
    loaded = tf.keras.models.load_model(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    return expected


@pytest.mark.parametrize(
    "make_layer",
    [
        pytest.param(lambda: MemoryBlock(2, 2, 1), id="memory-float"),
        pytest.param(
            lambda: MemoryBlock(
                3,
                1,
                2,
                input_quantizer="ste_sign",
                depthwise_quantizer=quantizers.kernel_quantizer("bifsmn", depthwise=True),
                depthwise_constraint="weight_clip",
                use_bias=False,
            ),
            id="memory-binary-asymmetric-dilated",
        ),
        pytest.param(lambda: RPReLU(), id="rprelu"),
    ],
)
def test_small_layers(make_layer, tmp_path):
    run_layer_test(make_layer(), (2, 8, 1, 16), tmp_path)


def test_threshold_copies_give_a_thermometer_code_under_the_sign(tmp_path):
    layer = ThresholdCopies([-0.5, 0.0, 0.5])
    out = run_layer_test(layer, (2, 8, 1, 16), tmp_path, output_shape=(2, 8, 1, 48))
    x = np.array([[-0.7, -0.2, 0.3, 0.9]], "float32")
    signs = np.sign(ThresholdCopies([-0.5, 0.0, 0.5])(x).numpy()).reshape(3, 4)
    # Copy k of a value is x - t_k: its sign says whether x passed threshold k.
    np.testing.assert_array_equal(signs, [[-1, 1, 1, 1], [-1, -1, 1, 1], [-1, -1, -1, 1]])
    assert np.isfinite(out).all()


@pytest.mark.parametrize("thresholds", [[0.0], [0.5, -0.5], [0.0, 0.0]])
def test_threshold_copies_need_several_increasing_thresholds(thresholds):
    with pytest.raises(ValueError, match="distinct increasing"):
        ThresholdCopies(thresholds)


@pytest.mark.parametrize(
    ("make_block", "width"),
    [
        pytest.param(lambda: DFSMNBlock(32, dropout=0.2), None, id="teacher-float"),
        pytest.param(
            lambda: DFSMNBlock(32, use_bias=False, hidden_activation="prelu", branches=(8, 4), **_binary()),
            4,
            id="student-bifsmn-width4",
        ),
        pytest.param(
            lambda: DFSMNBlock(
                32,
                use_bias=False,
                activation="rprelu",
                hidden_activation="rprelu",
                branches=(2,),
                **_binary("reactnet"),
            ),
            2,
            id="student-reactnet",
        ),
        pytest.param(
            lambda: DFSMNBlock(
                32, use_bias=False, hidden_activation="prelu", branches=(8,), quantize_memory_input=False, **_binary()
            ),
            8,
            id="student-float-memory-input",
        ),
        pytest.param(
            lambda: DFSMNBlock(
                32, use_bias=False, hidden_activation="prelu", branches=(8, 4), per_width_batch_norm=True, **_binary()
            ),
            4,
            id="student-per-width-batch-norm",
        ),
    ],
)
def test_dfsmn_block(make_block, width, tmp_path):
    run_layer_test(make_block(), (2, 8, 1, 16), tmp_path, call_kwargs={"width": width})


def _assert_one_magnitude_per_channel(kernel: np.ndarray) -> None:
    """``kernel`` is (taps x inputs, channels): the binary-filter form LCE accepts."""
    magnitudes = np.abs(kernel)
    np.testing.assert_allclose(magnitudes, np.broadcast_to(magnitudes[:1], kernel.shape), rtol=1e-6)


def _memory_reference(x: np.ndarray, kernel: np.ndarray, left: int, dilation: int) -> np.ndarray:
    """``y[t, c] = sum_j kernel[j, c] x[t + (j - left) dilation, c]``, zero outside."""
    frames = x.shape[1]
    out = np.zeros_like(x)
    for j in range(kernel.shape[0]):
        shift = (j - left) * dilation
        for t in range(frames):
            if 0 <= t + shift < frames:
                out[:, t] += kernel[j, 0, :, 0] * x[:, t + shift]
    return out


@pytest.mark.parametrize(("left", "right", "dilation"), [(2, 2, 1), (2, 2, 2), (3, 1, 1), (0, 2, 3)])
@pytest.mark.parametrize("binary", [False, True])
def test_memory_block_mixes_the_right_frames_with_zero_padding(left, right, dilation, binary):
    x = RNG.normal(size=(2, 8, 1, 6)).astype("float32")
    quantized = {}
    if binary:
        quantized = dict(
            input_quantizer="ste_sign",
            depthwise_quantizer=quantizers.kernel_quantizer("bifsmn", depthwise=True),
            depthwise_constraint="weight_clip",
        )
    layer = MemoryBlock(left, right, dilation, use_bias=False, **quantized)
    out = layer(x).numpy()
    with lq.context.quantized_scope(True):
        kernel = layer.depthwise_kernel.numpy()
    assert kernel.shape == (left + right + 1, 1, 6, 1)
    if binary:
        # Per channel the taps share one magnitude; the padded frames contribute 0, not +-1.
        _assert_one_magnitude_per_channel(kernel.reshape(-1, 6))
        x = np.where(x >= 0, 1.0, -1.0).astype("float32")
    np.testing.assert_allclose(out, _memory_reference(x, kernel, left, dilation), atol=1e-5)


def test_memory_block_rejects_negative_orders():
    with pytest.raises(ValueError, match="left_order=-1"):
        MemoryBlock(-1, 2)


def _zero_branch(batch_norm: tf.keras.layers.BatchNormalization) -> None:
    batch_norm.gamma.assign(tf.zeros_like(batch_norm.gamma))
    batch_norm.beta.assign(tf.zeros_like(batch_norm.beta))


@pytest.mark.parametrize("binary", [False, True])
def test_dfsmn_block_skips_and_per_width_branches(binary):
    x = RNG.normal(size=(2, 8, 1, 16)).astype("float32")
    block = DFSMNBlock(32, branches=(8, 4), **(_binary() if binary else {}))
    block(x, width=8)
    # Silencing the memory BN and a branch's output BN leaves both skips: y = m = x.
    _zero_branch(block.memory_bn)
    _zero_branch(block.output_bns[0])
    np.testing.assert_allclose(block(x, width=8).numpy(), x, atol=1e-6)
    # The other width has its own output BN, so its output differs.
    assert np.abs(block(x, width=4).numpy() - x).max() > 0.1
    with pytest.raises(ValueError, match="width 2"):
        block(x, width=2)
    with pytest.raises(ValueError, match="pass width="):
        block(x)


@pytest.mark.parametrize("per_width", [False, True])
def test_per_width_batch_norm_keeps_each_widths_statistics_apart(per_width):
    x = RNG.normal(size=(16, 8, 1, 16)).astype("float32")
    block = DFSMNBlock(32, branches=(8, 4, 2), per_width_batch_norm=per_width, **_binary())
    for width in (8, 4, 2):
        block(x, width=width)
    norms = {width: block.batch_norms(width)[:2] for width in (8, 4, 2)}
    before = {width: [bn.moving_mean.numpy().copy() for bn in norms[width]] for width in norms}
    block(x + 3.0, width=4, training=True)
    for width in (8, 4, 2):
        moved = [not np.allclose(bn.moving_mean.numpy(), mean) for bn, mean in zip(norms[width], before[width])]
        # Training width 4 moves its own statistics, and the other widths' only when shared.
        assert moved == [width == 4 or not per_width] * 2
    assert (len({id(bn) for pair in norms.values() for bn in pair}) == 6) == per_width
    # What each width's model is made of: its own BNs, never another width's.
    for width in (8, 4, 2):
        used = {id(w) for w in block.weights_at(width)}
        for other, pair in norms.items():
            assert all((id(bn.gamma) in used) == (other == width or not per_width) for bn in pair)


def test_a_block_with_shared_batch_norm_keeps_its_weight_names():
    # Saved models of earlier releases are TF checkpoints keyed by these names.
    block = DFSMNBlock(32, branches=(8, 4), name="block_3")
    block(RNG.normal(size=(1, 8, 1, 16)).astype("float32"), width=8)
    names = {w.name for w in block.weights}
    assert {"block_3/memory_bn/gamma:0", "block_3/hidden_bn/moving_mean:0"} <= names
    assert not any("_bn_w" in name and "output" not in name for name in names)
    # One branch has nothing to split: the teacher's block is the same either way.
    alone = DFSMNBlock(32, branches=(8,), per_width_batch_norm=True, name="block_0")
    alone(RNG.normal(size=(1, 8, 1, 16)).astype("float32"))
    assert "block_0/memory_bn/gamma:0" in {w.name for w in alone.weights}


def test_binary_block_convolutions_are_binary_with_their_own_quantizers():
    block = DFSMNBlock(32, use_bias=False, branches=(8,), **_binary("reactnet"))
    block(RNG.normal(size=(1, 8, 1, 16)).astype("float32"), width=8)
    convs = [block.memory, block.expand, block.project]
    assert len({id(conv.input_quantizer) for conv in convs}) == 3
    assert not any(conv.use_bias for conv in convs)
    with lq.context.quantized_scope(True):
        for conv in (block.expand, block.project):
            kernel = conv.kernel.numpy().reshape(-1, conv.filters)
            _assert_one_magnitude_per_channel(kernel)
    # ReActNet's thresholds: one per input channel of each convolution.
    assert [conv.input_quantizer.threshold.shape[0] for conv in convs] == [16, 16, 32]


def test_float_memory_input_leaves_the_memory_weights_and_the_1x1_convs_binary():
    block = DFSMNBlock(32, use_bias=False, branches=(8,), quantize_memory_input=False, **_binary())
    x = RNG.normal(size=(1, 8, 1, 16)).astype("float32")
    block(x, width=8)
    assert block.memory.input_quantizer is None
    assert block.memory.depthwise_quantizer is not None
    assert all(conv.input_quantizer is not None for conv in (block.expand, block.project))
    # The memory conv sees magnitudes now: scaling its input scales its output.
    memory = block.memory(x).numpy()
    np.testing.assert_allclose(block.memory(2 * x).numpy(), 2 * memory, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("slope", [0.01, 0.6, 1.7])
def test_skipping_a_hidden_prelu_before_the_sign_keeps_the_blocks_output(slope):
    x = RNG.normal(size=(4, 8, 1, 16)).astype("float32")
    block = DFSMNBlock(32, branches=(8,), hidden_activation="prelu", **_binary())
    block(x, width=8)
    block.hidden_act.alpha.assign(tf.fill(block.hidden_act.alpha.shape, slope))
    np.testing.assert_allclose(
        block(x, width=8, skip_hidden_activation=True).numpy(),
        block(x, width=8).numpy(),
        atol=1e-6,
    )
    # Not a sign-preserving step: the float block's ReLU, or a PReLU with no sign after it.
    for other in (DFSMNBlock(32, branches=(8,)), DFSMNBlock(32, branches=(8,), hidden_activation="prelu")):
        other(x, width=8)
        with pytest.raises(ValueError, match="only a PReLU read by a sign quantizer"):
            other(x, width=8, skip_hidden_activation=True)


def test_dfsmn_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one width"):
        DFSMNBlock(32, branches=())
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        DFSMNBlock(32, hidden_activation="gelu")


def test_prelu_has_one_slope_per_layer_starting_at_a_quarter():
    layer = activation_layer("prelu")
    x = RNG.normal(size=(2, 8, 1, 128)).astype("float32")
    np.testing.assert_allclose(layer(x).numpy(), np.where(x >= 0, x, 0.25 * x), rtol=1e-6)
    assert layer.count_params() == 1
    with pytest.raises(ValueError, match="relu, prelu, rprelu"):
        activation_layer("swish")


def test_rprelu_shifts_around_a_per_channel_prelu():
    layer = RPReLU()
    x = RNG.normal(size=(2, 4, 1, 3)).astype("float32")
    layer(x)
    gamma, alpha, zeta = np.array([0.1, -0.2, 0.3]), np.array([0.25, 0.5, 0]), np.array([1, 0, -1])
    layer.set_weights([gamma, alpha, zeta])
    shifted = x - gamma
    np.testing.assert_allclose(layer(x).numpy(), np.where(shifted >= 0, shifted, alpha * shifted) + zeta, rtol=1e-5)


@pytest.mark.parametrize("kind", ["prelu", "rprelu"])
def test_slopes_stay_positive_so_a_following_sign_keeps_its_information(kind):
    layer = activation_layer(kind)
    x = tf.constant(np.linspace(-2.0, 2.0, 16, dtype=np.float32).reshape(1, 4, 1, 4))
    layer(x)
    slope = layer.alpha if kind == "prelu" else layer.slope
    # Adam-sized steps that push the slope down, as they did in the failing demo run.
    optimizer = tf.keras.optimizers.Adam(0.1)
    for _ in range(10):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(slope)
        optimizer.apply_gradients([(tape.gradient(loss, slope), slope)])
    assert float(tf.reduce_min(slope)) == pytest.approx(0.01)
    signs = lq.math.sign(layer(x))
    np.testing.assert_array_equal(signs.numpy(), np.sign(x.numpy()))


def test_slope_floor_round_trips_and_rejects_a_non_positive_floor():
    floor = SlopeFloor(0.05)
    assert SlopeFloor.from_config(floor.get_config()).min_value == 0.05
    np.testing.assert_allclose(floor(tf.constant([-1.0, 0.0, 0.3])).numpy(), [0.05, 0.05, 0.3])
    with pytest.raises(ValueError, match="min_value"):
        SlopeFloor(0.0)
