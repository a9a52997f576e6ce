"""Keras -> flatbuffers: the student at every width for LCE, the FP teacher as float and int8 TFLite.

``convert_run(RUN_DIR)`` writes to one directory:

- ``student_w{W}.tflite`` for every trained width ``W`` of the BiFSMN student, converted by LCE's
  converter from :func:`~bifsmn_tf.models.dfsmn.width_model` (the 1-bit convolutions become
  ``LceBconv2d``);
- ``teacher_fp32.tflite``: the FP teacher as a float TFLite model;
- ``teacher_int8.tflite``: the FP teacher after full-integer post-training quantization (int8
  weights, activations, input and output), calibrated on real clips of the training split;
- ``manifest.json``: every file with its width, bytes, op counts and the check below, and the
  storage ratios of the student against the FP32 baseline
  (:class:`~bifsmn_tf.records.ConversionManifest`, which ``convert_run`` returns).

**Resumable.** Each flatbuffer, once written and checked, gets a record in ``.verified/``: its
sha256, its manifest entry and what it was made from (a hash of the source model's architecture
and weights, of the clips it was checked and calibrated on, the configs and the library
versions). A rerun after an interruption reuses a file whose record matches all that and whose
bytes still hash to the record's sha256, and redoes every other, so its manifest is the one an
uninterrupted run writes.

**Checked, not assumed.** Each flatbuffer runs in LCE's interpreter on real clips of the test
split and is compared with the Keras model it came from: top-1 agreement (at least
``ConvertConfig.min_agreement`` for the lossless conversions, the student and the float teacher)
and the largest logit difference. int8 quantization is lossy by design; its agreement is
reported, not required. Before converting, :func:`untie_signs` moves BN zeros that float rounding
could put on either side of a binary convolution's output level (the function is unchanged), so
a correct conversion is not refused for a tie.

**Storage, two ways**, both against the FP32 D-FSMN of the published architecture (the paper's
baseline, which is the teacher of a ``paper`` run; a ``lean`` run's teacher has the lean head, and
its ratios are reported too). ``parameter_count_ratio`` is the paper's way of counting: 32 bits
per baseline parameter against 1 bit per binarized weight plus 32 per other parameter of the
full-width student (parameters = trainable weights, as in PyTorch; BN moving statistics are
buffers).
``flatbuffer_ratio`` is the real thing: bytes of the baseline's float TFLite file over bytes of
the full-width student's LCE file, both with tensor names stripped (when that leaves the outputs
bit-identical, which is checked). The difference is what a deployable file carries beyond the
weights: per-channel scales and biases of every binary convolution, float depthwise memory
weights, PReLU slopes, graph structure.

With ``input="audio"`` every model gets the feature frontend in front of it, so the flatbuffers
take raw 16 kHz waveforms ``(1, clip_samples)``. The frontend's FFT and log do not quantize, so
the int8 teacher then keeps a float frontend and float input/output around an int8 body, and the
storage ratios then compare files that both carry the frontend's constants (mel filterbank, window).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils
from tqdm import tqdm

from bifsmn_tf import __version__
from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.data.labels import task_labels
from bifsmn_tf.data.pipeline import split_waveforms
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.fileio import atomic_write_bytes, atomic_write_text
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.dfsmn import (
    ModelConfig,
    build_teacher,
    model_config,
    model_kind,
    weight_counts,
    width_model,
)
from bifsmn_tf.models.layers import DFSMNBlock
from bifsmn_tf.records import (
    INPUTS,
    KIND_FP32,
    KIND_INT8,
    KIND_STUDENT,
    MANIFEST,
    ConversionManifest,
    FlatbufferEntry,
    RecordError,
)
from bifsmn_tf.runtime import FlatbufferModel
from bifsmn_tf.tflite_ops import op_counts
from bifsmn_tf.training.run import RunConfigs, load_run_model, read_run_info

#: Per-file records of the flatbuffers already written and checked: what a rerun reuses.
VERIFIED = ".verified"
#: The storage ratios are taken against the published FP32 D-FSMN, as the paper's are.
BASELINE_PROFILE = "paper"
STORAGE_NOTE = (
    "Against the FP32 D-FSMN of the published architecture (the paper's baseline; for a 'paper' "
    "run that is the run's teacher). parameter_count_ratio: 32 bits per baseline parameter over "
    "1 bit per binarized student weight + 32 bits per other student parameter (trainable weights "
    "of the full-width student: other widths' output branches are not part of it, BN moving "
    "statistics are buffers, not parameters). "
    "flatbuffer_ratio: bytes of the baseline's float TFLite file over bytes of the full-width "
    "student's LCE flatbuffer, tensor names stripped from both. The *_vs_run_teacher figures use "
    "this run's own teacher instead."
)


class ConversionError(RuntimeError):
    """A flatbuffer failed its check against Keras, or the run cannot be converted."""


@dataclasses.dataclass(frozen=True)
class ConvertConfig(JsonConfig):
    """How ``convert_run`` converts and checks.

    Attributes:
        input: ``"features"`` (flatbuffers take ``(1, T, F)`` features) or ``"audio"`` (the
            frontend is inside; they take ``(1, clip_samples)`` waveforms in [-1, 1]).
        calibration_clips: training clips for int8 post-training quantization.
        verify_clips: test clips each flatbuffer is compared with Keras on (``None``: all).
        min_agreement: required top-1 agreement of the lossless conversions.
        strip_names: drop tensor names from the files when the outputs stay bit-identical.
        seed: picks the calibration and verification clips.
    """

    input: str = "features"
    calibration_clips: int = 300
    verify_clips: int | None = 1000
    min_agreement: float = 0.995
    strip_names: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ConfigError(f"ConvertConfig.input: unknown {self.input!r}; choose one of {INPUTS}")
        if self.calibration_clips < 1 or (self.verify_clips is not None and self.verify_clips < 1):
            raise ConfigError("ConvertConfig: calibration_clips and verify_clips must be >= 1")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"ConvertConfig.min_agreement: must be in [0, 1], got {self.min_agreement}")


def with_audio_frontend(model: tf.keras.Model, feature_config: FeatureConfig) -> tf.keras.Model:
    """``model`` behind the feature frontend: ``(B, clip_samples)`` waveforms -> ``model``'s output."""
    waveforms = tf.keras.Input((feature_config.clip_samples,), name="audio")
    features = build_frontend(feature_config)(waveforms)
    return tf.keras.Model(waveforms, model(features), name=f"{model.name}_audio")


def convert_binary(model: tf.keras.Model) -> bytes:
    """LCE's converter: binary convolutions become ``LceBconv2d``; float I/O, ARM target."""
    return lce.convert_keras_model(model)


def _batch_one_converter(model: tf.keras.Model) -> tf.lite.TFLiteConverter:
    """TFLite's converter on ``model`` at batch size 1, as LCE's converter fixes it: a dynamic
    batch would add run-time shape ops (SHAPE, STRIDED_SLICE, PACK) to the teachers only."""
    signature = tf.TensorSpec([1, *model.input_shape[1:]], model.input.dtype)
    function = tf.function(lambda inputs: model(inputs, training=False), autograph=False).get_concrete_function(
        signature
    )
    return tf.lite.TFLiteConverter.from_concrete_functions([function], model)


def convert_float(model: tf.keras.Model) -> bytes:
    """TFLite's converter, no optimization: the float32 reference file."""
    return _batch_one_converter(model).convert()


def convert_int8(model: tf.keras.Model, calibration: np.ndarray, *, integer_io: bool) -> bytes:
    """Post-training int8 quantization calibrated on ``calibration`` (real inputs, ``(N, ...)``).

    ``integer_io``: int8 input and output and int8 ops only (full-integer); otherwise ops that do
    not quantize (the audio frontend's FFT) stay float and so do input and output.
    """
    converter = _batch_one_converter(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[np.newaxis]] for sample in calibration)
    if integer_io:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return converter.convert()


def untie_signs(student: tf.keras.Model) -> None:
    """Moves, in place, the zero of every BN whose output only reaches a sign (after fe3 and after
    each block's expand) to the middle of the gap between two output levels of the binary
    convolution before it. Every level keeps the sign it has in exact arithmetic (a zero right on
    a level keeps it at +1, as Larq's sign of 0), so the model computes the same function.

    A binary convolution outputs its scale times an integer: exactly in LCE (a popcount), up to
    float rounding in Keras (a float sum of +-scale). With a BN zero within that rounding of a
    level the two binarize the level differently for every input that hits it, so that LCE's
    top-1 can disagree with Keras on many inputs with neither wrong to float precision
    (CHANGELOG.md, 2026-12-06). Half a level away no rounding reaches.
    Students of other binarizers (shifted or scaled signs) are left as they are.
    """
    config = model_config(student)
    plain_signs = config.binarizer in quantizers.SIGN_INPUT_BINARIZERS
    if model_kind(student) != "student" or not plain_signs:
        return
    blocks = [layer for layer in student.layers if isinstance(layer, DFSMNBlock)]
    pairs = [(block.expand, block.hidden_bn) for block in blocks]
    if len(config.fc1_input_thresholds) == 1:  # fc1 reads the sign of fe3's PReLU, no copies
        pairs.append((student.get_layer("fe3"), student.get_layer("fe3_bn")))
    for conv, bn in pairs:
        magnitudes = np.abs(conv.kernel_quantizer(tf.constant(conv.kernel.numpy())).numpy())
        step = magnitudes.max(axis=(0, 1, 2))
        if not np.all(magnitudes == step):  # not +-scale per output channel: no levels
            continue
        gamma = bn.gamma.numpy().astype(np.float64)
        live = gamma != 0  # a zero gamma outputs beta whatever the input: no zero to move
        gamma = np.where(live, gamma, 1.0)
        std = np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
        zero = (bn.moving_mean.numpy() - bn.beta.numpy() * std / gamma) / step  # in levels
        on_level = zero == np.round(zero)
        middle = np.where(on_level, zero - 0.5 * np.sign(gamma), np.floor(zero) + 0.5)
        bn.moving_mean.assign_add(np.where(live, (middle - zero) * step, 0.0).astype(np.float32))


def strip_tensor_names(flatbuffer: bytes, probe: np.ndarray) -> tuple[bytes, bool]:
    """``(flatbuffer without tensor/subgraph names and signatures, True)`` when its outputs on
    ``probe`` are bit-identical to the original's; otherwise ``(flatbuffer, False)``."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(model)
    stripped = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    same = np.array_equal(FlatbufferModel(stripped)(probe), FlatbufferModel(flatbuffer)(probe))
    return (stripped, True) if same else (flatbuffer, False)


def compare(keras_logits: np.ndarray, flatbuffer_logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Flatbuffer logits against Keras logits of the same clips. Non-finite flatbuffer logits
    count as disagreements (an argmax over NaNs would agree by accident)."""
    finite = np.isfinite(flatbuffer_logits).all(axis=-1)
    agree = finite & (keras_logits.argmax(-1) == flatbuffer_logits.argmax(-1))
    return {
        "clips": len(labels),
        "top1_agreement": float(np.mean(agree)),
        "max_abs_logit_diff": float(np.max(np.abs(keras_logits - flatbuffer_logits))),
        "keras_accuracy": float(np.mean(keras_logits.argmax(-1) == labels)),
        "flatbuffer_accuracy": float(np.mean(finite & (flatbuffer_logits.argmax(-1) == labels))),
    }


def float_op_count(flatbuffer: bytes) -> int:
    """Operators that compute in float32: builtin ops whose first output is a float32 tensor.

    LCE's custom ops (``LceBconv2d`` may write float, ``LceDequantize`` does) are binary-domain
    ops, not float ones, and are not counted.
    """
    data = bytearray(flatbuffer)
    model = schema.Model.GetRootAs(data, 0)
    custom = [
        max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == schema.BuiltinOperator.CUSTOM
        for code in map(model.OperatorCodes, range(model.OperatorCodesLength()))
    ]
    count = 0
    for graph_index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            op = graph.Operators(op_index)
            if custom[op.OpcodeIndex()] or op.OutputsLength() == 0:
                continue
            count += graph.Tensors(op.Outputs(0)).Type() == schema.TensorType.FLOAT32
    return count


def op_summary(flatbuffer: bytes) -> dict[str, Any]:
    """Op counts by name, the number of LCE binary convolutions and of float ops."""
    counts = op_counts(flatbuffer)
    return {
        "op_counts": counts,
        "binary_convs": counts.get("LceBconv2d", 0),
        "float_ops": float_op_count(flatbuffer),
    }


def flatbuffer_entry(
    file: str,
    kind: str,
    width: int | None,
    flatbuffer: bytes,
    *,
    names_stripped: bool,
    verification: dict[str, Any],
) -> FlatbufferEntry:
    """The manifest entry of ``flatbuffer``, written as ``file``: its size, input shape and
    operators as measured, and what :func:`compare` found (``verification``)."""
    return FlatbufferEntry(
        file=file,
        kind=kind,
        width=width,
        bytes=len(flatbuffer),
        names_stripped=names_stripped,
        input_shape=FlatbufferModel(flatbuffer).input_shape,
        **op_summary(flatbuffer),
        verification=verification,
    )


def storage_bits(model: tf.keras.Model, width: int | None = None) -> int:
    """Bits of ``model``'s parameters at ``width`` counted the paper's way: 1 per binarized
    weight, 32 per other parameter (``weight_counts``: the executed path's trainable weights)."""
    counts = weight_counts(model, width)
    return counts["binary"] + 32 * counts["float"]


def published_baseline(
    config: ModelConfig,
    probe: np.ndarray,
    *,
    wrap: Callable[[tf.keras.Model], tf.keras.Model] = lambda model: model,
    strip: bool = True,
) -> tuple[int, int]:
    """``(parameter bits, float TFLite bytes)`` of the published FP32 D-FSMN with ``config``'s
    shapes (profile ``paper``): the reference of the paper's storage claim.

    A float file's size does not depend on the weights' values, but the converter merges equal
    constants (an untrained model's unit BN scales, zero biases), so the weights are set to random
    values first. ``wrap`` puts the model behind the same frontend as the converted files (or
    not); ``probe`` are inputs of the wrapped model.
    """
    baseline = build_teacher(config.replace(profile=BASELINE_PROFILE))
    rng = np.random.default_rng(0)
    for weight in baseline.weights:
        values = rng.normal(0.0, 0.05, size=weight.shape)
        weight.assign(np.abs(values) + 0.5 if "moving_variance" in weight.name else values)
    flatbuffer = convert_float(wrap(width_model(baseline)))
    if strip:
        flatbuffer, _ = strip_tensor_names(flatbuffer, probe)
    return storage_bits(baseline), len(flatbuffer)


def _sample(count: int | None, total: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` of ``total`` items drawn without replacement (all if None)."""
    if count is None or count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_digest(model: tf.keras.Model) -> str:
    """sha256 of ``model``'s kind, config and every weight (BN statistics included): equal digests
    convert to the same flatbuffers."""
    header = json.dumps({"kind": model_kind(model), "config": model_config(model).to_dict()})
    return _arrays_digest(np.frombuffer(header.encode(), dtype=np.uint8), *(w.numpy() for w in model.weights))


def _arrays_digest(*arrays: np.ndarray) -> str:
    """sha256 of arrays' dtypes, shapes and values."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _reusable_entry(out_dir: Path, file: str, source: dict[str, Any]) -> FlatbufferEntry | None:
    """The manifest entry recorded for ``file`` when it was made from ``source`` and its bytes
    are still the ones checked then; ``None`` when it must be (re)done."""
    try:
        record = json.loads((out_dir / VERIFIED / f"{file}.json").read_text())
        data = (out_dir / file).read_bytes()
    except (OSError, ValueError):  # not there yet, or a record damaged by hand: redo
        return None
    if not isinstance(record, dict) or record.get("source") != source:
        return None
    if record.get("sha256") != _sha256(data):
        return None
    try:
        return FlatbufferEntry.from_dict(record.get("entry"), out_dir)
    except RecordError:
        return None


def convert_models(
    student: tf.keras.Model,
    teacher: tf.keras.Model,
    widths: Sequence[int],
    out_dir: str | Path,
    *,
    calibration: np.ndarray,
    verification: tuple[np.ndarray, np.ndarray],
    labels: Sequence[str],
    config: ConvertConfig = ConvertConfig(),
    feature_config: FeatureConfig = FeatureConfig(),
    provenance: dict[str, Any] | None = None,
) -> ConversionManifest:
    """Convert, check and write every flatbuffer and ``manifest.json`` to ``out_dir``.

    ``calibration`` and ``verification`` hold waveforms ``(N, clip_samples)`` in [-1, 1] (the
    latter with their labels); ``labels`` name the models' classes, in output order. Features are
    computed from the waveforms with ``feature_config``'s frontend unless ``config.input ==
    "audio"``. Raises :class:`ConversionError` when a lossless conversion
    agrees with Keras on fewer than ``config.min_agreement`` of the clips; the manifest is then not
    written (an old one is removed first), so a directory with a manifest is always complete.
    ``student`` is first passed through :func:`untie_signs` (in place). Files a killed or failed
    earlier call finished and checked are reused (see the module doc), and their names printed.
    ``provenance`` fills the manifest's ``run_dir``, ``teacher_run``, ``profile``, ``task`` and
    ``protocol`` (:class:`~bifsmn_tf.records.ConversionManifest`) for a conversion of a run.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    audio = config.input == "audio"
    frontend = build_frontend(feature_config)

    def wrap(model: tf.keras.Model) -> tf.keras.Model:
        return with_audio_frontend(model, feature_config) if audio else model

    def to_inputs(waveforms: np.ndarray) -> np.ndarray:
        if audio:
            return np.asarray(waveforms, np.float32)
        return np.concatenate([frontend(waveforms[i : i + 256]).numpy() for i in range(0, len(waveforms), 256)])

    calibration_inputs = to_inputs(calibration)
    verify_inputs, verify_labels = to_inputs(verification[0]), np.asarray(verification[1])
    probe = verify_inputs[:16]
    common = {
        "verification": _arrays_digest(verify_inputs, verify_labels),
        "convert_config": config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "versions": {
            "tensorflow": tf.__version__,
            "larq_compute_engine": lce.__version__,
            "bifsmn_tf": __version__,
        },
    }
    teacher_digest = _model_digest(teacher)
    sources = {
        KIND_STUDENT: {**common, "model": _model_digest(student)},
        KIND_FP32: {**common, "model": teacher_digest},
        KIND_INT8: {
            **common,
            "model": teacher_digest,
            "calibration": _arrays_digest(calibration_inputs),
        },
    }

    untie_signs(student)  # after its digest: the same weights on disk untie the same way

    # Each job: the file, its kind and width, the Keras model the check compares with, the graph
    # handed to the converter (same logits), and the converter.
    Converter = Callable[[tf.keras.Model], bytes]
    jobs: list[tuple[str, str, int | None, tf.keras.Model, tf.keras.Model, Converter]] = [
        (
            f"student_w{width}.tflite",
            KIND_STUDENT,
            width,
            wrap(width_model(student, width)),
            wrap(width_model(student, width, for_lce=True)),
            convert_binary,
        )
        for width in widths
    ]
    teacher_model = wrap(width_model(teacher))
    jobs.append(("teacher_fp32.tflite", KIND_FP32, None, teacher_model, teacher_model, convert_float))
    jobs.append(
        (
            "teacher_int8.tflite",
            KIND_INT8,
            None,
            teacher_model,
            teacher_model,
            lambda model: convert_int8(model, calibration_inputs, integer_io=not audio),
        )
    )

    entries = []
    for file, kind, width, keras_model, exported, converter in tqdm(jobs, desc="convert", unit="file"):
        # As JSON reads it back from a record (lists, not tuples), to compare with one.
        source = json.loads(json.dumps({"file": file, "width": width, **sources[kind]}))
        entry = _reusable_entry(out_dir, file, source)
        if entry is not None:
            tqdm.write(f"{file}: reused (written and checked earlier from the same models and data)")
            entries.append(entry)
            continue
        keras_logits = keras_model.predict(verify_inputs, batch_size=256, verbose=0)
        if not np.isfinite(keras_logits).all():
            raise ConversionError(
                f"{file}: the Keras model's own logits are not finite (NaN/inf) on the "
                "verification clips: its weights are broken (a diverged run?); nothing converted"
            )
        flatbuffer = converter(exported)
        stripped = False
        if config.strip_names:
            flatbuffer, stripped = strip_tensor_names(flatbuffer, probe)
        check = compare(keras_logits, FlatbufferModel(flatbuffer)(verify_inputs), verify_labels)
        lossy = kind == KIND_INT8
        check["required_agreement"] = None if lossy else config.min_agreement
        if not lossy and check["top1_agreement"] < config.min_agreement:
            raise ConversionError(
                f"{file}: LCE's interpreter agrees with Keras on {check['top1_agreement']:.2%} of "
                f"{check['clips']} clips (required {config.min_agreement:.2%}); max logit "
                f"difference {check['max_abs_logit_diff']:.3g}"
            )
        atomic_write_bytes(out_dir / file, flatbuffer)
        entry = flatbuffer_entry(file, kind, width, flatbuffer, names_stripped=stripped, verification=check)
        # Written after the file: a record always vouches for a complete, checked file.
        record = {"sha256": _sha256(flatbuffer), "source": source, "entry": entry.to_dict(out_dir)}
        atomic_write_text(out_dir / VERIFIED / f"{file}.json", json.dumps(record, indent=2) + "\n")
        entries.append(entry)

    full = max(widths)
    student_bits = storage_bits(student, full)
    teacher_bits = storage_bits(teacher)
    teacher_bytes = next(e.bytes for e in entries if e.kind == KIND_FP32)
    student_bytes = next(e.bytes for e in entries if e.kind == KIND_STUDENT and e.width == full)
    if model_config(teacher).profile == BASELINE_PROFILE:
        baseline_bits, baseline_bytes = teacher_bits, teacher_bytes
    else:
        baseline_bits, baseline_bytes = published_baseline(
            model_config(teacher), probe, wrap=wrap, strip=config.strip_names
        )
    manifest = ConversionManifest(
        input=config.input,
        input_shape=entries[0].input_shape,
        labels=tuple(labels),
        widths=tuple(widths),
        feature_config=feature_config.to_dict(),
        convert_config=config.to_dict(),
        versions={"tensorflow": tf.__version__, "larq_compute_engine": lce.__version__},
        **(provenance or {}),
        storage={
            "parameter_count_ratio": baseline_bits / student_bits,
            "flatbuffer_ratio": baseline_bytes / student_bytes,
            "baseline_fp32_bytes": baseline_bytes,
            "baseline_parameter_bits": baseline_bits,
            "student_parameter_bits": student_bits,
            "student_bytes": student_bytes,
            "student_width": full,
            "teacher_fp32_bytes": teacher_bytes,
            "parameter_count_ratio_vs_run_teacher": teacher_bits / student_bits,
            "flatbuffer_ratio_vs_run_teacher": teacher_bytes / student_bytes,
            "how": STORAGE_NOTE,
        },
        models=tuple(entries),
    )
    manifest.save(out_dir / MANIFEST)
    return manifest


def convert_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    config: ConvertConfig = ConvertConfig(),
    *,
    data_root: str | Path | None = None,
) -> ConversionManifest:
    """Convert the best student of a training run and its teacher (``run.json``'s teacher run).

    Calibration clips come from the run's training split, verification clips from its test
    split, both without augmentation, of ``data_root`` (a dataset in the Speech Commands layout;
    default: the run's own data). ``out_dir`` defaults to ``RUN_DIR/flatbuffers`` (features
    input) or ``RUN_DIR/flatbuffers_audio``.
    """
    run_dir = Path(run_dir)
    record = read_run_info(run_dir)
    if record.kind != "student":
        raise ConversionError(f"{run_dir}: not a student run (convert a BiFSMN student's run directory)")
    if not record.teacher_run.is_dir():
        raise ConversionError(
            f"{run_dir}: its teacher run is not at {record.teacher_run}; keep the teacher's run "
            "folder where it was beside the student's (move or copy the two together)"
        )
    configs = RunConfigs.load(run_dir)
    if data_root is not None:
        configs = dataclasses.replace(
            configs, data=configs.data.replace(root=str(Path(data_root).expanduser().resolve()))
        )
    student, _ = load_run_model(run_dir)
    teacher, _ = load_run_model(record.teacher_run)
    train_waveforms, _ = split_waveforms(configs.data, configs.features, "train")
    test_waveforms, test_labels = split_waveforms(configs.data, configs.features, "test")
    calibration = train_waveforms[_sample(config.calibration_clips, len(train_waveforms), config.seed)]
    chosen = _sample(config.verify_clips, len(test_waveforms), config.seed + 1)
    if out_dir is None:
        out_dir = run_dir / ("flatbuffers" if config.input == "features" else "flatbuffers_audio")
    return convert_models(
        student,
        teacher,
        configs.train.widths,
        out_dir,
        calibration=calibration,
        verification=(test_waveforms[chosen], test_labels[chosen]),
        config=config,
        feature_config=configs.features,
        labels=task_labels(configs.data.task),
        provenance={
            "run_dir": run_dir,
            "teacher_run": record.teacher_run,
            "profile": configs.model.profile,
            "task": configs.data.task,
            "protocol": configs.data.protocol,
        },
    )


def format_manifest(manifest: ConversionManifest) -> str:
    """A plain-text table of the files, their binary ops, checks and the storage ratios."""
    lines = [f"{'file':<22} {'bytes':>10} {'LceBconv2d':>10} {'float ops':>9} {'agreement':>9} {'max |Δlogit|':>12}"]
    for entry in manifest.models:
        check = entry.verification
        lines.append(
            f"{entry.file:<22} {entry.bytes:>10,} {entry.binary_convs:>10} {entry.float_ops:>9} "
            f"{check['top1_agreement']:>9.2%} {check['max_abs_logit_diff']:>12.3g}"
        )
    storage = manifest.storage
    clips = manifest.models[0].verification["clips"]
    lines += [
        f"agreement: top-1 of LCE's interpreter vs Keras on {clips} test clips (int8: lossy, reported only)",
        f"storage of student_w{storage['student_width']} vs the published FP32 D-FSMN: "
        f"{storage['parameter_count_ratio']:.2f}x by parameter count (1 bit per binary weight, 32 per "
        f"other), {storage['flatbuffer_ratio']:.2f}x by file bytes "
        f"({storage['baseline_fp32_bytes']:,} / {storage['student_bytes']:,})",
    ]
    return "\n".join(lines)
