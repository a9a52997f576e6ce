"""Teacher and thinnable student: counts, MACs, widths, weight sharing, init, save/load, baselines
training, and LCE conversion checked against Keras in LCE's interpreter."""

from __future__ import annotations

from unittest import mock

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from larq.models import ModelProfile

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.config import ConfigError
from bifsmn_tf.converters import convert_binary, untie_signs
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.dfsmn import (
    STUDENT_OPTIONS,
    ModelConfig,
    blocks_for_width,
    build_bifsmn,
    build_teacher,
    feature_model,
    init_student_from_teacher,
    load_model,
    model_config,
    model_kind,
    save_model,
    weight_counts,
    width_model,
)
from bifsmn_tf.tflite_ops import op_counts

RNG = np.random.default_rng(11)
# The same code path at a size that trains in a second: 2 blocks, widths 2 and 1.
SMALL = ModelConfig(frontend_channels=4, num_blocks=2, hidden_size=32, memory_size=16, widths=(2, 1))


def _features(batch: int, config: ModelConfig = ModelConfig(), rng: np.random.Generator = RNG) -> np.ndarray:
    # Raw dB-like scale, as the official frontend produces (no normalisation).
    return (rng.normal(size=(batch, config.num_frames, config.num_features)) * 10).astype("float32")


def _trainable_count(model: tf.keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _train(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, steps: int, lr: float) -> list[float]:
    optimizer = tf.keras.optimizers.Adam(lr)
    cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            outputs = outputs if isinstance(outputs, list) else [outputs]
            loss = tf.add_n([cross_entropy(y, logits) for logits in outputs])
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        losses.append(float(loss))
    return losses


@pytest.fixture(scope="module")
def student() -> tf.keras.Model:
    return build_bifsmn(ModelConfig())


@pytest.fixture(scope="module")
def teacher() -> tf.keras.Model:
    return build_teacher(ModelConfig())


def test_width_blocks_follow_the_spec():
    assert {w: blocks_for_width(w, 8) for w in (8, 4, 2, 1)} == {
        8: tuple(range(8)),
        4: (1, 3, 5, 7),
        2: (3, 7),
        1: (7,),
    }
    assert ModelConfig(num_blocks=4, widths=(4, 2, 1)).blocks(2) == (1, 3)
    assert ModelConfig(num_blocks=4, widths=(4, 2, 1)).blocks(None) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="must divide the number of blocks"):
        blocks_for_width(3, 8)


def test_a_teacher_config_drops_the_student_options_only():
    student = ModelConfig(
        profile="lean",
        binarizer="irnet",
        memory_input="float",
        fe3_input_thresholds=(-0.5, 0.5),
        student_dropout=0.1,
        widths=(8, 4),
    )
    teacher = student.for_teacher()
    assert {name: getattr(teacher, name) for name in STUDENT_OPTIONS} == {
        name: getattr(ModelConfig(), name) for name in STUDENT_OPTIONS
    }
    assert (teacher.profile, teacher.widths) == ("lean", (8, 4))
    assert teacher.same_architecture(student)
    assert not teacher.same_architecture(student.replace(num_blocks=4, widths=(4,)))


@pytest.mark.parametrize(("num_classes", "expected"), [(12, 600_252), (35, 623_827)])
def test_teacher_has_the_official_parameter_count(num_classes, expected):
    assert _trainable_count(build_teacher(ModelConfig(num_classes=num_classes))) == expected


@pytest.mark.parametrize("num_classes", [12, 35])
def test_student_parameter_count_differs_from_the_official_as_designed(num_classes):
    official = 606_431 + (num_classes - 12) * 1025  # official student; its classifier is 1024 x C
    dropped_biases = 32 + 8 * (128 + 256 + 128)  # fe3 and each block's three convs, all before BN
    unused_branches = (8 * 4 - 15) * (128 * 2 + 1)  # 32 branches there, 15 executed ones here
    expected = official - dropped_biases - unused_branches
    assert _trainable_count(build_bifsmn(ModelConfig(num_classes=num_classes))) == expected


@pytest.mark.parametrize("width", [8, 4, 2, 1])
def test_weight_counts_follow_the_executed_path(student, width):
    binary_per_block = 2 * 128 * 256 + 5 * 128  # expand, project, memory taps
    float_per_block = 2 * (256 + 1) + (512 + 1)  # memory BN/PReLU, hidden BN/PReLU, one branch
    # fe0 conv + BN + PReLU, fe3 BN + PReLU, fc1 bias + PReLU
    front = (416 + 32 + 1) + (64 + 1) + (128 + 1)
    counts = weight_counts(student, width)
    assert counts["binary"] == 25 * 16 * 32 + 256 * 128 + width * binary_per_block
    assert counts["float"] == front + width * float_per_block + 1024 * 12 + 12


def test_lean_profile_stores_over_20x_fewer_bits_than_its_teacher():
    """1 bit per binary weight, 32 per other parameter: the paper's probable storage measure."""
    config = ModelConfig(profile="lean")
    teacher_bits = 32 * weight_counts(build_teacher(config))["float"]
    counts = weight_counts(build_bifsmn(config), 8)
    assert teacher_bits / (counts["binary"] + 32 * counts["float"]) > 20


def test_every_width_runs_and_width_models_compute_the_same_logits(student):
    x = _features(3)
    outputs = student(x)
    assert len(outputs) == 4 and all(o.shape == (3, 12) for o in outputs)
    for width, logits in zip(student.bifsmn_info.config.widths, outputs):
        narrow = width_model(student, width)
        np.testing.assert_allclose(narrow(x).numpy(), logits.numpy(), atol=1e-5)
    assert len({tuple(o.numpy().ravel()[:4]) for o in outputs}) == 4  # different paths


@pytest.mark.parametrize("profile", ["paper", "lean"])
@pytest.mark.parametrize("num_classes", [12, 35])
def test_profiles_build_for_12_and_35_classes(profile, num_classes):
    config = SMALL.replace(profile=profile, num_classes=num_classes)
    x = _features(2, config)
    assert build_teacher(config)(x).shape == (2, num_classes)
    assert [o.shape for o in build_bifsmn(config)(x)] == [(2, num_classes)] * 2
    head = build_teacher(config).get_layer("classifier").kernel.shape[0]
    assert head == (config.backbone_frames * 16 if profile == "paper" else 16)


def test_width_models_share_the_weights(student):
    narrow = width_model(student, 2)
    own = {id(w) for w in student.weights}
    assert narrow.weights and all(id(w) in own for w in narrow.weights)
    x = _features(2)
    before = narrow(x).numpy()
    bias = student.get_layer("classifier").bias
    bias.assign_add(tf.ones_like(bias))
    try:
        np.testing.assert_allclose(narrow(x).numpy(), before + 1.0, atol=1e-5)
    finally:
        bias.assign_sub(tf.ones_like(bias))


@pytest.mark.parametrize("width", [8, 4, 2, 1])
def test_feature_model_exposes_the_executed_blocks_and_trains_the_model(student, width):
    features = feature_model(student, width)
    x = _features(2)
    with tf.GradientTape() as tape:
        logits, *blocks = features(x, training=True)
        loss = tf.reduce_sum(logits) + tf.add_n([tf.reduce_sum(b) for b in blocks])
    assert len(blocks) == width and all(b.shape == (2, 8, 1, 128) for b in blocks)
    grads = dict(zip([w.name for w in student.trainable_weights], tape.gradient(loss, student.trainable_weights)))
    executed = {f"block_{i}" for i in model_config(student).blocks(width)}
    for name, grad in grads.items():
        block = name.split("/")[0]
        on_path = not block.startswith("block_") or (
            block in executed and ("output_" not in name or f"_w{width}/" in name)
        )
        assert (grad is not None) == on_path, name


def test_teacher_feature_model_has_all_blocks(teacher):
    logits, *blocks = feature_model(teacher)(_features(2))
    assert logits.shape == (2, 12) and len(blocks) == 8
    with pytest.raises(ValueError, match="one width"):
        width_model(teacher, 4)


def test_width_must_be_one_of_the_config(student):
    with pytest.raises(ValueError, match=r"one of \(8, 4, 2, 1\)"):
        width_model(student, 3)


def _conv_macs(layer: tf.keras.layers.Layer, input_shape: tuple[int, ...]) -> dict[int, int]:
    """Larq's MAC count of one conv inside a DFSMNBlock, profiled in a one-layer model: Larq's
    summary cannot see into composite layers (their inner layers have no functional nodes)."""
    profile = ModelProfile(tf.keras.Sequential([tf.keras.Input(input_shape), layer]))
    return {bits: profile.op_count("mac", bits) for bits in (1, 32)}


@pytest.mark.parametrize(
    ("width", "binary_macs", "total_macs"),
    [(8, 5_316_608, 5_431_296), (4, 3_198_976, 3_313_664), (2, 2_140_160, 2_254_848), (1, 1_610_752, 1_725_440)],
)
def test_macs_per_width_match_the_spec(student, width, binary_macs, total_macs):
    model = width_model(student, width)
    profile = ModelProfile(model)  # counts fe0, fe3, fc1 and the classifier
    binary, floating = profile.op_count("mac", 1), profile.op_count("mac", 32)
    assert (binary, floating) == (819_200 + 262_144, 102_400 + 12_288)
    for index in model_config(student).blocks(width):
        block = student.get_layer(f"block_{index}")
        for conv, channels in ((block.memory, 128), (block.expand, 128), (block.project, 256)):
            macs = _conv_macs(conv, (8, 1, channels))
            binary, floating = binary + macs[1], floating + macs[32]
    assert (binary, floating) == (binary_macs, total_macs - binary_macs)


def test_teacher_macs_are_all_float(teacher):
    profile = ModelProfile(teacher)
    assert profile.op_count("mac", 1) == 0
    block = teacher.get_layer("block_0")
    per_block = sum(
        _conv_macs(conv, (8, 1, channels))[32]
        for conv, channels in ((block.memory, 128), (block.expand, 128), (block.project, 256))
    )
    assert per_block == 529_408
    assert profile.op_count("mac", 32) + 8 * per_block == 5_431_296


def test_init_student_from_teacher_carries_the_matching_weights():
    config = SMALL.replace(num_blocks=4, widths=(4, 2, 1))
    teacher, student = build_teacher(config), build_bifsmn(config)
    for weight in teacher.weights:
        weight.assign(RNG.normal(size=weight.shape).astype("float32"))
    report = init_student_from_teacher(student, teacher)

    teacher_weights = {w.name.split(":")[0]: w.numpy() for w in teacher.weights}
    student_weights = {w.name.split(":")[0]: w for w in student.weights}
    for path in report["carried"]:
        np.testing.assert_array_equal(student_weights[path].numpy(), teacher_weights[path])
    assert set(report["carried"]) | set(report["fresh"]) == set(student_weights)
    # Fresh: PReLU slopes replacing the teacher's ReLUs, and the narrower widths' branches.
    relu_replacements = {"fe0_act/alpha", "fe3_act/alpha", "fc1_act/alpha"} | {
        f"block_{i}/hidden_act/alpha" for i in range(4)
    }
    narrow_branches = {
        f"block_{i}/output_{part}_w{w}/{name}"
        for w, blocks in ((2, (1, 3)), (1, (3,)))
        for i in blocks
        for part, names in (("bn", ("gamma", "beta", "moving_mean", "moving_variance")), ("act", ("alpha",)))
        for name in names
    }
    assert set(report["fresh"]) == relu_replacements | narrow_branches
    assert "block_3/output_bn_w4/gamma" in report["carried"]  # teacher's branch -> full width
    assert "block_2/memory/depthwise_kernel" in report["carried"]
    assert set(report["dropped"]) == {"fe3/bias"} | {
        f"block_{i}/{conv}/bias" for i in range(4) for conv in ("memory", "expand", "project")
    }


def test_init_gives_every_width_the_teachers_memory_and_hidden_batch_norm():
    config = SMALL.replace(num_blocks=4, widths=(4, 2, 1))
    teacher, student = build_teacher(config), build_bifsmn(config.replace(per_width_batch_norm=True))
    shared = build_bifsmn(config)
    for weight in teacher.weights:
        weight.assign(RNG.normal(size=weight.shape).astype("float32"))
    report, shared_report = init_student_from_teacher(student, teacher), init_student_from_teacher(shared, teacher)

    # Block 3 runs at widths 4, 2 and 1: three copies of each of its teacher BNs.
    block = student.get_layer("block_3")
    for width in (4, 2, 1):
        for own, taught in zip(block.batch_norms(width)[:2], teacher.get_layer("block_3").batch_norms()[:2]):
            for own_weight, taught_weight in zip(own.weights, taught.weights):
                np.testing.assert_array_equal(own_weight.numpy(), taught_weight.numpy())
    assert "block_3/hidden_bn_w1/moving_variance" in report["carried"]
    # The same start as with shared BN: what is fresh or dropped does not change.
    assert (report["fresh"], report["dropped"]) == (shared_report["fresh"], shared_report["dropped"])
    x = _features(4, config)
    for left, right in zip(student(x, training=False), shared(x, training=False)):
        np.testing.assert_array_equal(left.numpy(), right.numpy())


def test_init_spreads_a_teacher_slope_over_reactnets_per_channel_slopes():
    config = SMALL.replace(num_blocks=2, widths=(2, 1), binarizer="reactnet")
    teacher, student = build_teacher(config), build_bifsmn(config)
    teacher.get_layer("block_1").memory_act.alpha.assign([[[0.7]]])
    report = init_student_from_teacher(student, teacher)
    assert "block_1/memory_act/alpha" in report["carried"]
    slopes = student.get_layer("block_1").memory_act.slope.numpy()
    assert slopes.shape == (SMALL.memory_size,) and np.all(slopes == np.float32(0.7))


def test_init_rejects_mismatched_or_swapped_models():
    teacher, student = build_teacher(SMALL), build_bifsmn(SMALL.replace(hidden_size=16))
    with pytest.raises(ValueError, match="differ in architecture"):
        init_student_from_teacher(student, teacher)
    with pytest.raises(ValueError, match="swapped"):
        init_student_from_teacher(teacher, build_bifsmn(SMALL))


def _outputs(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
    """Every output of ``model`` on ``x``, stacked (a student has one per width)."""
    return np.stack([output.numpy() for output in tf.nest.flatten(model(x, training=False))])


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_save_load_round_trip_rebuilds_from_the_recorded_config(kind, tmp_path):
    config = SMALL.replace(num_classes=35, profile="lean", binarizer="reactnet", left_order=3)
    model = (build_teacher if kind == "teacher" else build_bifsmn)(config)
    x = _features(4, config)
    _train(model, x, RNG.integers(0, 35, size=4), steps=2, lr=1e-2)
    directory = tmp_path / "model"
    save_model(model, directory, config)
    loaded, loaded_config = load_model(directory)
    assert loaded_config == config and model_config(loaded) == config and model_kind(loaded) == kind
    expected = _outputs(model, x)
    np.testing.assert_array_equal(_outputs(loaded, x), expected)

    # Saving again replaces the directory as a whole and leaves nothing else behind.
    weight = model.get_layer("classifier").bias
    weight.assign_add(tf.ones_like(weight))
    save_model(model, directory, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    reloaded, _ = load_model(directory)
    np.testing.assert_array_equal(_outputs(reloaded, x), _outputs(model, x))


def test_save_and_load_refuse_what_they_cannot_round_trip(tmp_path):
    student = build_bifsmn(SMALL)
    with pytest.raises(ValueError, match="cut-out"):
        save_model(width_model(student, 2), tmp_path / "w", SMALL)
    with pytest.raises(ValueError, match="config differs"):
        save_model(student, tmp_path / "w", SMALL.replace(num_classes=35))
    with pytest.raises(ConfigError, match="saved model directory"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="not built by"):
        model_config(tf.keras.Sequential([tf.keras.Input((2,))]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"widths": (4, 8)}, "widest first"),
        ({"widths": (3,)}, "does not divide"),
        ({"profile": "tiny"}, "profile"),
        ({"binarizer": "dorefa"}, "binarizer"),
        ({"num_classes": 0}, "num_classes"),
        ({"memory_input": "ternary"}, "memory_input"),
        ({"per_width_batch_norm": "yes"}, "true or false"),
        ({"fe3_input_thresholds": (0.5, -0.5)}, "distinct increasing"),
        ({"fc1_input_thresholds": (0.5,)}, "single threshold must be 0"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**changes)


def test_config_json_round_trip(tmp_path):
    config = ModelConfig(widths=(8, 2), profile="lean", binarizer="lpb")
    assert ModelConfig.load(config.save(tmp_path / "c.json")) == config


@pytest.mark.parametrize("binarizer", quantizers.BINARIZERS)
def test_each_baseline_trains_with_a_falling_loss(binarizer):
    config = SMALL.replace(binarizer=binarizer)
    model = build_bifsmn(config)
    assert quantizers.set_training_progress(model, 0.5) == (16 if binarizer == "irnet" else 0)
    x = _features(16, config)
    y = RNG.integers(0, 12, size=16)
    losses = _train(model, x, y, steps=8, lr=1e-2)
    assert losses[-1] < 0.8 * losses[0], losses


def _trained_student(config: ModelConfig, seed: int = 0) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_bifsmn(config)
    # A few real steps so that BN statistics and weights are not at their initial values.
    _train(model, _features(16, config, rng), rng.integers(0, config.num_classes, size=16), 2, 1e-3)
    # Two steps leave BN near its identity init: its zeros sit next to level 0 of the binary
    # convolutions, the most frequent one, where rounding decides LCE's and Keras's signs apart.
    untie_signs(model)
    return model


#: Distance from 0 every activation sign's input keeps on the compared inputs: about 10x the
#: largest difference of LCE's and Keras's values near 0 in front of a sign (3.4e-6 in 256
#: inputs), 20x the largest margin at which the two were seen to binarize differently (1.5e-6,
#: in 16384 inputs of 32 models).
TIE_MARGIN = 3e-5


def _sign_margins(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
    """Per sample of ``x``: the smallest |input| of any activation sign in Keras, its distance
    from a binarization tie (where LCE's and Keras's rounding may pick different signs)."""
    margins, sign = [], lq.math.sign

    def recording(inputs: tf.Tensor) -> tf.Tensor:
        if inputs.shape[0] == len(x):  # an activation; kernels have fewer rows than x has samples
            margins.append(np.abs(inputs.numpy().reshape(len(x), -1)).min(axis=1))
        return sign(inputs)

    with mock.patch.object(lq.math, "sign", recording):
        model(x)
    return np.min(margins, axis=0)


def _untied_features(model: tf.keras.Model, count: int = 8) -> np.ndarray:
    """The ``count`` of 64 random inputs farthest from a binarization tie in ``model``. Where
    ``untie_signs`` settles the ties at binary convolution levels (plain-sign binarizers), each
    keeps ``TIE_MARGIN``, so LCE must reproduce Keras on them; other binarizers keep ties at
    level 0 of their barely trained BNs that some inputs cannot avoid."""
    candidates = _features(64, model_config(model), np.random.default_rng(0))
    margins = _sign_margins(model, candidates)
    chosen = np.argsort(margins)[-count:]
    if model_config(model).binarizer in quantizers.SIGN_INPUT_BINARIZERS:
        assert margins[chosen].min() >= TIE_MARGIN, f"few inputs away from ties: {np.sort(margins)}"
    return candidates[np.sort(chosen)]


def _assert_reproduces(model: tf.keras.Model, x: np.ndarray, actual: np.ndarray) -> None:
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))


def _check_conversion(model: tf.keras.Model, expected_bconvs: int, compare: bool = True) -> dict[str, int]:
    """Convert with LCE, check the binary convolution count and, with ``compare``, that LCE's
    interpreter reproduces Keras (LCE's own end-to-end tolerance) on inputs away from sign ties,
    and that it no longer does once one binary weight of the Keras model is flipped. Returns the
    op counts, with the flatbuffer's size under ``"bytes"``."""
    flatbuffer = convert_binary(model)
    ops = op_counts(flatbuffer)
    assert ops.get("LceBconv2d", 0) == expected_bconvs, ops
    x = _untied_features(model) if compare else _features(8)
    actual = lce.testing.Interpreter(flatbuffer).predict(x)
    assert actual.shape == (8, model_config(model).num_classes) and np.isfinite(actual).all()
    if compare:
        _assert_reproduces(model, x, actual)
        # A conversion one bit off (fc1's scale is the mean magnitude: unchanged) must not pass.
        kernel = model.get_layer("fc1").kernel
        kernel[0, 0, 0, 0].assign(-kernel[0, 0, 0, 0])
        try:
            with pytest.raises(AssertionError):
                _assert_reproduces(model, x, actual)
        finally:
            kernel[0, 0, 0, 0].assign(-kernel[0, 0, 0, 0])
    return ops | {"bytes": len(flatbuffer)}


def test_a_width_with_its_own_batch_norm_converts_as_one_with_shared_batch_norm():
    student = _trained_student(ModelConfig(per_width_batch_norm=True, profile="lean", memory_input="float"))
    ops = _check_conversion(width_model(student, 4, for_lce=True), expected_bconvs=10)
    shared = _trained_student(ModelConfig(profile="lean", memory_input="float"))
    flatbuffer = convert_binary(width_model(shared, 4, for_lce=True))
    # The other widths' BNs are not in width 4's graph: the same ops and bytes.
    assert ops == op_counts(flatbuffer) | {"bytes": len(flatbuffer)}


def test_full_width_student_converts_to_18_binary_convolutions():
    ops = _check_conversion(width_model(_trained_student(ModelConfig()), 8), expected_bconvs=18)
    # fe0 is the one float conv; the memory convs are float depthwise convs on +-1 inputs.
    assert (ops["CONV_2D"], ops["DEPTHWISE_CONV_2D"], ops["LceDequantize"]) == (1, 8, 8)
    assert ops["FULLY_CONNECTED"] == 1 and "PAD" not in ops and "PADV2" not in ops


@pytest.mark.slow  # an option off by default; 1 min
def test_float_memory_input_converts_with_the_same_binary_convolutions():
    model = width_model(_trained_student(ModelConfig(memory_input="float", profile="lean")), 8)
    ops = _check_conversion(model, expected_bconvs=18)
    # The memory convs take the float residual stream: no dequantize in front of them.
    assert ops["DEPTHWISE_CONV_2D"] == 8 and "LceDequantize" not in ops


@pytest.mark.slow  # test_convert checks the logits of every written flatbuffer; 2 min
def test_the_lce_graph_hands_each_expand_to_its_project_bitpacked_with_the_same_logits():
    model = _trained_student(ModelConfig(memory_input="float", profile="lean"))
    x = _features(16)
    exported = width_model(model, 8, for_lce=True)
    np.testing.assert_allclose(
        exported(x, training=False).numpy(), width_model(model, 8)(x, training=False).numpy(), atol=1e-5
    )
    plain = _check_conversion(width_model(model, 8), expected_bconvs=18)
    fused = _check_conversion(exported, expected_bconvs=18)
    # Per block: no PReLU and no quantize between expand and project, and expand keeps 256
    # int32 thresholds instead of a float multiplier and bias per channel (1 KB less).
    assert fused["PRELU"] == plain["PRELU"] - 8
    assert fused["LceQuantize"] == plain["LceQuantize"] - 8
    assert plain["bytes"] - fused["bytes"] >= 8 * 256 * 4


@pytest.mark.parametrize("binarizer", ["reactnet", "xnor"])
def test_the_lce_graph_keeps_activations_the_quantizer_would_see(binarizer):
    # ReActNet shifts before its sign (RPReLU), XNOR scales by the magnitude: nothing to skip.
    model = _trained_student(SMALL.replace(binarizer=binarizer))
    x = _features(4, SMALL)
    np.testing.assert_allclose(
        width_model(model, 2, for_lce=True)(x, training=False).numpy(),
        width_model(model, 2)(x, training=False).numpy(),
        atol=1e-5,
    )


@pytest.mark.slow  # an option off by default; 2 min
def test_threshold_copies_keep_fe3_and_fc1_binary_with_more_input_channels():
    config = ModelConfig(
        memory_input="float",
        profile="lean",
        fe3_input_thresholds=(-0.67, 0.0, 0.67),
        fc1_input_thresholds=(-0.67, 0.0, 0.67),
    )
    model = width_model(_trained_student(config), 8)
    assert model.get_layer("fe3").kernel.shape == (5, 5, 48, 32)
    assert model.get_layer("fc1").kernel.shape == (1, 1, 3 * config.fc1_inputs, 128)
    ops = _check_conversion(model, expected_bconvs=18)
    assert ops["CONCATENATION"] == 2
    plain = convert_binary(
        # Trained, as the other: the converter shares identical constants, such as fresh BN's.
        width_model(_trained_student(ModelConfig(memory_input="float", profile="lean")), 8)
    )
    # LCE packs input channels 32 to a word: fe3's 48 take two words where 16 took one (half
    # empty), fc1's 768 take three times the words of 256.
    extra_bits = 5 * 5 * 32 * 32 + 2 * config.fc1_inputs * 128
    growth = ops["bytes"] - len(plain)
    assert extra_bits / 8 <= growth <= extra_bits / 8 + 1536  # + the copy ops, their constants


def test_init_repeats_fe3_and_fc1_kernels_for_every_threshold_copy():
    config = SMALL.replace(num_blocks=2, widths=(2, 1))
    teacher = build_teacher(config)
    student = build_bifsmn(config.replace(fe3_input_thresholds=(-1.0, 0.0, 1.0), fc1_input_thresholds=(-1.0, 0.0, 1.0)))
    report = init_student_from_teacher(student, teacher)
    assert {"fe3/kernel", "fc1/kernel"} <= set(report["carried"])
    for name in ("fe3", "fc1"):
        taught = teacher.get_layer(name).kernel.numpy()
        np.testing.assert_array_equal(student.get_layer(name).kernel.numpy(), np.concatenate([taught] * 3, axis=2))


@pytest.mark.slow
@pytest.mark.parametrize("width", [4, 2, 1])
@pytest.mark.parametrize("profile", ["paper", "lean"])
def test_every_width_and_profile_converts(profile, width):
    model = _trained_student(ModelConfig(profile=profile))
    _check_conversion(width_model(model, width), expected_bconvs=2 + 2 * width)


@pytest.mark.slow
@pytest.mark.parametrize("binarizer", [b for b in quantizers.BINARIZERS if b != "bifsmn"])
def test_which_baselines_deploy_as_binary_convolutions(binarizer):
    model = _trained_student(ModelConfig(binarizer=binarizer, widths=(8,)))
    deployable = quantizers.BINARIZERS[binarizer].lce_binary
    # LPB's two chained signs per activation make it a float graph in which a rounding
    # difference at a threshold flips a sign and moves logits by ~0.1: not compared exactly.
    _check_conversion(width_model(model, 8), expected_bconvs=18 if deployable else 0, compare=binarizer != "lpb")


def test_op_counts_rejects_other_bytes():
    with pytest.raises(ValueError, match="TFL3"):
        op_counts(b"not a flatbuffer at all")
