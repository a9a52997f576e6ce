"""bifsmn_tf.convert and the modules it runs (converters, storage, tflite_ops): real LCE/TFLite
conversions of briefly trained models, checked in LCE's interpreter against Keras; op census,
storage ratios, audio input, the manifest."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf import convert
from bifsmn_tf.config import ConfigError
from bifsmn_tf.convert import VERIFIED, ConversionError, ConvertConfig, compare, convert_models
from bifsmn_tf.converters import convert_binary, convert_float, strip_tensor_names, untie_signs
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.models.dfsmn import (
    ModelConfig,
    build_bifsmn,
    build_teacher,
    load_model,
    save_model,
    weight_counts,
    width_model,
)
from bifsmn_tf.records import KIND_FP32, KIND_INT8, KIND_STUDENT, MANIFEST, ConversionManifest
from bifsmn_tf.runtime import FlatbufferModel
from bifsmn_tf.storage import storage_bits
from bifsmn_tf.tflite_ops import float_op_count, op_counts

WIDTHS = (8, 4, 2)
LABELS = tuple(f"label_{i}" for i in range(12))
CONVERTED_WIDTHS = (8, 2)  # width 4 converts like the others; left out to save a minute


def _waveforms(count: int, seed: int) -> np.ndarray:
    """Tone bursts at random pitches, positions and levels over noise: varied log-mel inputs."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000.0
    clips = []
    for _ in range(count):
        centre, spread = rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        envelope = np.exp(-0.5 * ((t - centre) / spread) ** 2)
        tone = rng.uniform(0.01, 0.5) * np.sin(2 * np.pi * rng.uniform(150, 4000) * t) * envelope
        clips.append(tone + rng.uniform(0.001, 0.05) * rng.normal(size=t.shape))
    return np.clip(np.stack(clips), -1, 1).astype(np.float32)


def _briefly_train(model: tf.keras.Model, features: np.ndarray, labels: np.ndarray, steps: int = 3) -> None:
    """A few SGD steps on every output (every width): moving BN statistics and biases become real
    values rather than their initial ones."""
    optimizer = tf.keras.optimizers.SGD(0.05, momentum=0.9)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    batch = len(features) // steps
    for step in range(steps):
        x, y = (
            features[step * batch : (step + 1) * batch],
            labels[step * batch : (step + 1) * batch],
        )
        with tf.GradientTape() as tape:
            outputs = model(x, training=True)
            total = tf.add_n([loss(y, logits) for logits in tf.nest.flatten(outputs)])
        optimizer.apply_gradients(zip(tape.gradient(total, model.trainable_variables), model.trainable_variables))


@pytest.fixture(scope="module")
def data():
    waveforms = _waveforms(224, seed=0)
    labels = np.random.default_rng(1).integers(0, 12, len(waveforms)).astype(np.int32)
    features = build_frontend(FeatureConfig())(waveforms).numpy()
    return {"waveforms": waveforms, "labels": labels, "features": features}


@pytest.fixture(scope="module")
def lean(data, tmp_path_factory):
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(profile="lean", widths=WIDTHS)
    student, teacher = build_bifsmn(config), build_teacher(config)
    _briefly_train(student, data["features"][:96], data["labels"][:96])
    _briefly_train(teacher, data["features"][:96], data["labels"][:96])
    out = tmp_path_factory.mktemp("lean")
    manifest = convert_models(
        student,
        teacher,
        CONVERTED_WIDTHS,
        out,
        calibration=data["waveforms"][:64],
        verification=(data["waveforms"][96:], data["labels"][96:]),
        config=ConvertConfig(verify_clips=None),
        labels=LABELS,
    )
    return {"student": student, "teacher": teacher, "out": out, "manifest": manifest}


def _entry(manifest, kind, width=None):
    return manifest.entry(kind, width)


def test_manifest_lists_every_file_it_wrote(lean):
    manifest, out = lean["manifest"], lean["out"]
    assert ConversionManifest.load(out / MANIFEST) == manifest
    files = {e.file for e in manifest.models}
    assert files == {f"student_w{w}.tflite" for w in CONVERTED_WIDTHS} | {
        "teacher_fp32.tflite",
        "teacher_int8.tflite",
    }
    assert files == {p.name for p in out.glob("*.tflite")}
    for entry in manifest.models:
        data = (out / entry.file).read_bytes()
        assert entry.bytes == len(data)
        assert entry.op_counts == op_counts(data)
        assert entry.input_shape == (32, 32)
    assert manifest.widths == CONVERTED_WIDTHS and manifest.input == "features"


@pytest.mark.parametrize("width", CONVERTED_WIDTHS)
def test_every_fc_transform_fc1_and_fe3_is_a_binary_convolution(lean, width):
    entry = _entry(lean["manifest"], KIND_STUDENT, width)
    # fe3 and fc1, then each executed block's 1x1 expand and project: 18 at full width.
    assert entry.binary_convs == 2 + 2 * width
    assert entry.op_counts["LceBconv2d"] == entry.binary_convs
    # The memory convs stay float (LCE has no binary depthwise conv): one per executed block.
    assert entry.op_counts["DEPTHWISE_CONV_2D"] == width
    # fe0 is the only float convolution; the classifier the only dense layer.
    assert entry.op_counts["CONV_2D"] == 1 and entry.op_counts["FULLY_CONNECTED"] == 1
    # PReLUs after fe0, fe3, fc1 and each block's memory and output: the hidden one before
    # project's sign is left out (it cannot change a sign), so expand hands project bitpacked
    # bits (width_model(for_lce=True)); the agreement check still runs the full Keras model.
    assert entry.op_counts["PRELU"] == 3 + 2 * width


def test_full_width_census(lean):
    assert _entry(lean["manifest"], KIND_STUDENT, 8).binary_convs == 18


def test_teachers_have_no_binary_ops_and_int8_no_float_ops(lean):
    fp32 = _entry(lean["manifest"], KIND_FP32)
    int8 = _entry(lean["manifest"], KIND_INT8)
    for entry in (fp32, int8):
        assert not any(name.startswith("Lce") for name in entry.op_counts)
    # At batch 1 there are no run-time shape ops: every op of the float teacher computes in float.
    assert fp32.float_ops == sum(fp32.op_counts.values())
    assert int8.float_ops == 0  # full-integer: int8 input, ops and output
    assert FlatbufferModel((lean["out"] / int8.file).read_bytes()).input_dtype == np.int8


@pytest.mark.parametrize("kind, width", [(KIND_STUDENT, 8), (KIND_STUDENT, 2), (KIND_FP32, None)])
def test_written_flatbuffers_agree_with_keras(lean, data, kind, width):
    entry = _entry(lean["manifest"], kind, width)
    check = entry.verification
    assert check["clips"] == len(data["labels"]) - 96
    assert check["top1_agreement"] >= 0.995 and check["required_agreement"] == 0.995
    # Independently of the manifest: the file on disk, run again, against the Keras model.
    model = lean["student"] if kind == KIND_STUDENT else lean["teacher"]
    keras_logits = width_model(model, width)(data["features"][96:], training=False).numpy()
    tflite_logits = FlatbufferModel((lean["out"] / entry.file).read_bytes())(data["features"][96:])
    assert np.mean(keras_logits.argmax(-1) == tflite_logits.argmax(-1)) >= 0.995
    assert np.max(np.abs(keras_logits - tflite_logits)) == pytest.approx(check["max_abs_logit_diff"], abs=1e-6)


def test_int8_teacher_is_checked_but_not_required_to_agree(lean):
    check = _entry(lean["manifest"], KIND_INT8).verification
    assert check["required_agreement"] is None
    assert 0.0 <= check["top1_agreement"] <= 1.0 and math.isfinite(check["max_abs_logit_diff"])


def test_tensor_names_are_stripped(lean):
    for entry in lean["manifest"].models:
        assert entry.names_stripped
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray((lean["out"] / entry.file).read_bytes()))
        assert all(not tensor.name for graph in model.subgraphs for tensor in graph.tensors)


def test_lean_storage_against_the_published_fp32_baseline(lean):
    storage = lean["manifest"].storage
    student_entry = _entry(lean["manifest"], KIND_STUDENT, 8)
    assert storage["student_bytes"] == student_entry.bytes
    assert storage["flatbuffer_ratio"] == storage["baseline_fp32_bytes"] / student_entry.bytes
    assert storage["flatbuffer_ratio"] >= 15.5
    assert storage["parameter_count_ratio"] > 20
    counts = weight_counts(lean["student"], 8)
    assert storage["student_parameter_bits"] == counts["binary"] + 32 * counts["float"]
    assert storage["baseline_parameter_bits"] == 32 * sum(weight_counts(build_teacher(ModelConfig())).values())
    # The lean run's own teacher is a little smaller than the baseline (pooled head).
    assert storage["teacher_fp32_bytes"] < storage["baseline_fp32_bytes"]


@pytest.mark.slow  # the lean profile's storage tests stay in the default run; 40 s
def test_paper_profile_storage(data, lean):
    # The published baseline does not depend on the student's profile: the lean conversion
    # measured it already.
    config = ModelConfig(profile="paper", widths=WIDTHS)
    student = build_bifsmn(config)
    _briefly_train(student, data["features"][:96], data["labels"][:96])
    flatbuffer, stripped = strip_tensor_names(convert_binary(width_model(student, 8)), data["features"][96:112])
    assert stripped and op_counts(flatbuffer)["LceBconv2d"] == 18
    storage = lean["manifest"].storage
    assert storage["baseline_fp32_bytes"] / len(flatbuffer) >= 10
    assert storage["baseline_parameter_bits"] == storage_bits(build_teacher(config))
    assert storage["baseline_parameter_bits"] / storage_bits(student, 8) > 10


def test_storage_bits_count_binarized_weights_at_one_bit(lean):
    counts = weight_counts(lean["student"], 8)
    # fe3 5x5x16x32, fc1 256x128, per block: memory 5x128, expand 128x256, project 256x128.
    assert counts["binary"] == 5 * 5 * 16 * 32 + 256 * 128 + 8 * (5 * 128 + 2 * 128 * 256)
    assert storage_bits(lean["student"], 8) == counts["binary"] + 32 * counts["float"]
    assert storage_bits(lean["teacher"]) == 32 * sum(weight_counts(lean["teacher"]).values())


def test_a_flatbuffer_that_disagrees_with_keras_is_refused_and_no_manifest_is_written(
    data, lean, tmp_path, monkeypatch
):
    # A conversion gone wrong, made real: the converter hands back the flatbuffer of another
    # model (the lean fixture's trained student), which LCE runs fine and which computes
    # something else than the freshly built student being converted.
    other = (lean["out"] / "student_w2.tflite").read_bytes()
    monkeypatch.setattr(convert, "convert_binary", lambda model: other)
    config = ModelConfig(profile="lean", widths=WIDTHS)
    (tmp_path / MANIFEST).write_text("{}")  # a stale manifest from an earlier run
    with pytest.raises(ConversionError, match="agrees with Keras"):
        convert_models(
            build_bifsmn(config),
            build_teacher(config),
            (2,),
            tmp_path,
            calibration=data["waveforms"][:8],
            verification=(data["waveforms"][96:], data["labels"][96:]),
            labels=LABELS,
        )
    assert not (tmp_path / MANIFEST).exists()


def test_a_model_with_nan_weights_is_refused_before_converting(data, tmp_path):
    config = ModelConfig(profile="lean", widths=WIDTHS)
    student = build_bifsmn(config)
    student.get_layer("classifier").bias.assign(np.full(12, np.nan, np.float32))
    with pytest.raises(ConversionError, match="not finite"):
        convert_models(
            student,
            build_teacher(config),
            (2,),
            tmp_path,
            calibration=data["waveforms"][:8],
            verification=(data["waveforms"][96:], data["labels"][96:]),
            labels=LABELS,
        )
    assert not list(tmp_path.iterdir())


def test_nan_flatbuffer_logits_count_as_disagreement():
    keras_logits = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    check = compare(keras_logits, np.array([[0.0, 1.0], [np.nan, np.nan]], np.float32), np.array([1, 0]))
    assert check["top1_agreement"] == 0.5 and check["flatbuffer_accuracy"] == 0.5
    assert check["keras_accuracy"] == 1.0


def test_float_op_count_of_a_binary_model(lean):
    flatbuffer = (lean["out"] / "student_w2.tflite").read_bytes()
    counts = op_counts(flatbuffer)
    lce_ops = sum(n for name, n in counts.items() if name.startswith("Lce"))
    # Every non-LCE op of the student computes in float (PRELU, ADD, DEPTHWISE_CONV_2D, ...).
    assert float_op_count(flatbuffer) == sum(counts.values()) - lce_ops


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"input": "mel"}, "input"),
        ({"verify_clips": 0}, "verify_clips"),
        ({"min_agreement": 1.5}, "min_agreement"),
    ],
)
def test_convert_config_rejects_bad_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        ConvertConfig(**changes)


@pytest.mark.slow
def test_audio_input_puts_the_frontend_inside(lean, data, tmp_path):
    manifest = convert_models(
        lean["student"],
        lean["teacher"],
        (2,),
        tmp_path,
        calibration=data["waveforms"][:32],
        verification=(data["waveforms"][96:], data["labels"][96:]),
        labels=LABELS,
        config=ConvertConfig(input="audio", verify_clips=None),
    )
    assert manifest.input == "audio" and manifest.input_shape == (16000,)
    for entry in manifest.models:
        assert entry.input_shape == (16000,)
        assert "RFFT2D" in entry.op_counts
    student = _entry(manifest, KIND_STUDENT, 2)
    assert student.verification["top1_agreement"] >= 0.995 and student.binary_convs == 6
    # The FFT does not quantize: the int8 teacher keeps float input around an int8 body.
    int8 = FlatbufferModel((tmp_path / "teacher_int8.tflite").read_bytes())
    assert int8.input_dtype == np.float32
    # Same logits as the features model fed the frontend's features.
    audio_model = FlatbufferModel((tmp_path / student.file).read_bytes())
    features_model = FlatbufferModel((lean["out"] / "student_w2.tflite").read_bytes())
    np.testing.assert_allclose(
        audio_model(data["waveforms"][96:104]), features_model(data["features"][96:104]), atol=1e-3
    )


# A student and teacher small enough to convert in seconds, one width; "paper": the teacher is the
# storage baseline, no third model to convert.
TINY = ModelConfig(frontend_channels=4, num_blocks=2, hidden_size=32, memory_size=16, widths=(2,))

# Converts the saved tiny models as the test does, but the third job (the int8 teacher) never
# ends: the test kills the process there, when student_w2 and teacher_fp32 are finished.
# convert_int8 is replaced by the name convert_models calls it by, in bifsmn_tf.convert.
KILLED_CONVERSION = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import bifsmn_tf
    from bifsmn_tf import convert
    from bifsmn_tf.models.dfsmn import load_model

    root, out = sys.argv[1:]
    convert.convert_int8 = lambda *args, **kwargs: time.sleep(3600)
    clips = np.load(f"{root}/clips.npz")
    convert.convert_models(
        load_model(f"{root}/student")[0], load_model(f"{root}/teacher")[0], (2,), out,
        calibration=clips["calibration"], verification=(clips["verify"], clips["labels"]),
        labels=[f"label_{i}" for i in range(12)],
    )
    """
)


@pytest.fixture(scope="module")
def tiny(data, tmp_path_factory):
    tf.keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("tiny")
    for name, build in (("student", build_bifsmn), ("teacher", build_teacher)):
        model = build(TINY)
        _briefly_train(model, data["features"][:96], data["labels"][:96])
        save_model(model, root / name, TINY)
    np.savez(
        root / "clips.npz",
        calibration=data["waveforms"][:16],
        verify=data["waveforms"][96:],
        labels=data["labels"][96:],
    )
    return root


def _convert_tiny(root, out, calibration_clips=16):
    clips = np.load(root / "clips.npz")
    return convert_models(
        load_model(root / "student")[0],
        load_model(root / "teacher")[0],
        (2,),
        out,
        calibration=clips["calibration"][:calibration_clips],
        verification=(clips["verify"], clips["labels"]),
        labels=LABELS,
    )


def _reused(output: str) -> list[str]:
    return [line.split(":")[0] for line in output.splitlines() if ": reused" in line]


def _identity(path):
    """Changes when the file is written again (atomically: a new inode)."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.slow  # 76 s on a 2-core EPYC: converts the tiny models one and a half times
def test_a_killed_conversion_reuses_its_checked_files_and_redoes_the_rest(tiny, tmp_path, capsys):
    reference = tmp_path / "uninterrupted"
    uninterrupted = _convert_tiny(tiny, reference)
    assert _reused(capsys.readouterr().out) == []

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "w") as stderr:  # a file, not a pipe nobody reads until the end: it never fills
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_CONVERSION, str(tiny), str(out)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 300
    while not (out / VERIFIED / "teacher_fp32.tflite.json").exists():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "teacher_fp32 was never finished"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert sorted(p.name for p in out.glob("*.tflite")) == ["student_w2.tflite", "teacher_fp32.tflite"]
    assert not (out / MANIFEST).exists()

    # Bytes damaged after their record was written are not trusted.
    damaged = bytearray((out / "teacher_fp32.tflite").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (out / "teacher_fp32.tflite").write_bytes(damaged)
    finished = _identity(out / "student_w2.tflite")
    manifest = _convert_tiny(tiny, out)
    assert _reused(capsys.readouterr().out) == ["student_w2.tflite"]
    assert _identity(out / "student_w2.tflite") == finished
    assert manifest == uninterrupted == ConversionManifest.load(out / MANIFEST)
    for file in ("student_w2.tflite", "teacher_fp32.tflite", "teacher_int8.tflite"):
        assert (out / file).read_bytes() == (reference / file).read_bytes()

    # Other calibration clips: only the file they make is redone.
    calibrated = _identity(out / "teacher_int8.tflite")
    _convert_tiny(tiny, out, calibration_clips=8)
    assert _reused(capsys.readouterr().out) == ["student_w2.tflite", "teacher_fp32.tflite"]
    assert _identity(out / "teacher_int8.tflite") != calibrated


def _zeros_in_levels(block):
    """Where block's hidden BN crosses 0, in output levels of its expand convolution."""
    bn, expand = block.hidden_bn, block.expand
    step = np.abs(expand.kernel_quantizer(tf.constant(expand.kernel.numpy())).numpy()).max((0, 1, 2))
    std = np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
    return (bn.moving_mean.numpy() - bn.beta.numpy() * std / bn.gamma.numpy()) / step, step


def test_the_converters_write_the_bytes_of_converting_the_keras_model_itself(tiny):
    # They save the serving function and the variables only, not the Keras model (whose saving
    # traces every layer): the flatbuffers must not change for it.
    student, teacher = load_model(tiny / "student")[0], load_model(tiny / "teacher")[0]
    binary = width_model(student, 2, for_lce=True)
    assert convert_binary(binary) == lce.convert_keras_model(binary)
    signature = tf.TensorSpec([1, *teacher.input_shape[1:]], teacher.input.dtype)
    function = tf.function(lambda inputs: teacher(inputs, training=False), autograph=False).get_concrete_function(
        signature
    )
    assert convert_float(teacher) == tf.lite.TFLiteConverter.from_concrete_functions([function], teacher).convert()


def test_untie_signs_keeps_the_function_and_settles_a_tie_lce_and_keras_split(tiny, data):
    student = load_model(tiny / "student")[0]
    features = data["features"][96:]
    before = width_model(student, 2)(features, training=False).numpy()
    untie_signs(student)
    # Only signs read the moved BNs, and none changed: the logits are the same to the bit.
    np.testing.assert_array_equal(width_model(student, 2)(features, training=False).numpy(), before)
    for index in (0, 1):
        zeros, _ = _zeros_in_levels(student.get_layer(f"block_{index}"))
        np.testing.assert_allclose(zeros - np.floor(zeros), 0.5, atol=1e-3)

    # A BN zero 1e-7 of a level above level 0, the sum expand's 16 inputs reach most often:
    # Keras's float sum of +-scale and LCE's popcount fall on either side of it (without the
    # second untie_signs, 9 of 128 clips change class and logits move by 0.61).
    block = student.get_layer("block_1")
    zeros, step = _zeros_in_levels(block)
    shift = np.zeros(TINY.hidden_size, np.float32)
    shift[0] = (1e-7 - zeros[0]) * step[0]
    block.hidden_bn.moving_mean.assign_add(shift)
    untie_signs(student)
    flatbuffer = convert_binary(width_model(student, 2, for_lce=True))
    check = compare(
        width_model(student, 2)(features, training=False).numpy(),
        FlatbufferModel(flatbuffer)(features),
        data["labels"][96:],
    )
    assert check["top1_agreement"] == 1.0 and check["max_abs_logit_diff"] < 1e-4, check
