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
reported, not required. Before converting, :func:`~bifsmn_tf.converters.untie_signs` moves BN
zeros that float rounding could put on either side of a binary convolution's output level (the
function is unchanged), so a correct conversion is not refused for a tie.

**Storage, two ways**, both against the FP32 D-FSMN of the published architecture: by the paper's
parameter count and by file bytes (:mod:`bifsmn_tf.storage`).

With ``input="audio"`` every model gets the feature frontend in front of it, so the flatbuffers
take raw 16 kHz waveforms ``(1, clip_samples)``. The frontend's FFT and log do not quantize, so
the int8 teacher then keeps a float frontend and float input/output around an int8 body, and the
storage ratios then compare files that both carry the frontend's constants (mel filterbank, window).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from bifsmn_tf import __version__
from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.converters import (
    convert_binary,
    convert_float,
    convert_int8,
    strip_tensor_names,
    untie_signs,
    with_audio_frontend,
)
from bifsmn_tf.data.labels import task_labels
from bifsmn_tf.data.pipeline import split_waveforms
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.fileio import atomic_write_bytes, atomic_write_text
from bifsmn_tf.models.dfsmn import model_config, model_kind, width_model
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
from bifsmn_tf.storage import storage_record
from bifsmn_tf.tflite_ops import op_summary
from bifsmn_tf.training.run import RunConfigs, load_run_model, read_run_info

#: Per-file records of the flatbuffers already written and checked: what a rerun reuses.
VERIFIED = ".verified"


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
    wrap = functools.partial(with_audio_frontend, feature_config=feature_config) if audio else _unwrapped
    frontend = None if audio else build_frontend(feature_config)
    clips = _Clips(
        calibration=_model_inputs(calibration, frontend),
        verify=_model_inputs(verification[0], frontend),
        labels=np.asarray(verification[1]),
    )
    sources = _sources(student, teacher, clips, config, feature_config)
    untie_signs(student)  # after its digest: the same weights on disk untie the same way
    jobs = _jobs(
        student,
        teacher,
        widths,
        wrap,
        int8=lambda model: convert_int8(model, clips.calibration, integer_io=not audio),
    )
    entries = [
        _convert_or_reuse(job, sources[job.kind], out_dir, clips, config)
        for job in tqdm(jobs, desc="convert", unit="file")
    ]
    storage = storage_record(student, teacher, entries, max(widths), clips.probe, wrap=wrap, strip=config.strip_names)
    manifest = ConversionManifest(
        input=config.input,
        input_shape=entries[0].input_shape,
        labels=tuple(labels),
        widths=tuple(widths),
        feature_config=feature_config.to_dict(),
        convert_config=config.to_dict(),
        versions={"tensorflow": tf.__version__, "larq_compute_engine": lce.__version__},
        **(provenance or {}),
        storage=storage,
        models=tuple(entries),
    )
    manifest.save(out_dir / MANIFEST)
    return manifest


def _unwrapped(model: tf.keras.Model) -> tf.keras.Model:
    """A model as it is: with features input no frontend goes in front of it."""
    return model


def _model_inputs(waveforms: np.ndarray, frontend: tf.keras.layers.Layer | None) -> np.ndarray:
    """``waveforms`` ``(N, clip_samples)`` as the converted models take them: their features by
    ``frontend``, or the waveforms themselves when the frontend is inside the models (``None``)."""
    if frontend is None:
        return np.asarray(waveforms, np.float32)
    return np.concatenate([frontend(waveforms[i : i + 256]).numpy() for i in range(0, len(waveforms), 256)])


@dataclasses.dataclass(frozen=True)
class _Clips:
    """The clips of a conversion as the converted models take them.

    Attributes:
        calibration: inputs the int8 teacher is calibrated on.
        verify: inputs every flatbuffer is checked against Keras on.
        labels: the labels of ``verify``.
    """

    calibration: np.ndarray
    verify: np.ndarray
    labels: np.ndarray

    @property
    def probe(self) -> np.ndarray:
        """The inputs a file without tensor names must give bit-identical outputs on."""
        return self.verify[:16]


def _sources(
    student: tf.keras.Model,
    teacher: tf.keras.Model,
    clips: _Clips,
    config: ConvertConfig,
    feature_config: FeatureConfig,
) -> dict[str, dict[str, Any]]:
    """What the files of each kind are made from, by kind: digests of the model and of the clips
    (the calibration clips for int8 only), the configs and the library versions. A file's
    ``.verified/`` record holds this; a rerun reuses the file while it is unchanged."""
    common = {
        "verification": _arrays_digest(clips.verify, clips.labels),
        "convert_config": config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "versions": {
            "tensorflow": tf.__version__,
            "larq_compute_engine": lce.__version__,
            "bifsmn_tf": __version__,
        },
    }
    teacher_digest = _model_digest(teacher)
    return {
        KIND_STUDENT: {**common, "model": _model_digest(student)},
        KIND_FP32: {**common, "model": teacher_digest},
        KIND_INT8: {
            **common,
            "model": teacher_digest,
            "calibration": _arrays_digest(clips.calibration),
        },
    }


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


@dataclasses.dataclass(frozen=True)
class _Job:
    """One flatbuffer to make.

    Attributes:
        file: its file name.
        kind: ``KIND_STUDENT``, ``KIND_FP32`` or ``KIND_INT8``.
        width: the student's width (``None`` for a teacher).
        keras_model: the Keras model the check compares with.
        exported: the graph handed to the converter (same logits).
        converter: Keras model -> flatbuffer bytes.
    """

    file: str
    kind: str
    width: int | None
    keras_model: tf.keras.Model
    exported: tf.keras.Model
    converter: Callable[[tf.keras.Model], bytes]


def _jobs(
    student: tf.keras.Model,
    teacher: tf.keras.Model,
    widths: Sequence[int],
    wrap: Callable[[tf.keras.Model], tf.keras.Model],
    *,
    int8: Callable[[tf.keras.Model], bytes],
) -> list[_Job]:
    """The student at every width (LCE), the teacher as float and as int8 (``int8`` converts it),
    every model behind ``wrap``."""
    jobs = [
        _Job(
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
    jobs.append(_Job("teacher_fp32.tflite", KIND_FP32, None, teacher_model, teacher_model, convert_float))
    jobs.append(_Job("teacher_int8.tflite", KIND_INT8, None, teacher_model, teacher_model, int8))
    return jobs


def _convert_or_reuse(
    job: _Job, source: dict[str, Any], out_dir: Path, clips: _Clips, config: ConvertConfig
) -> FlatbufferEntry:
    """The manifest entry of ``job``'s file: the one recorded when an earlier call made the file
    from the same ``source``, or else a new one, the file converted, checked, written and recorded."""
    # As JSON reads it back from a record (lists, not tuples), to compare with one.
    source = json.loads(json.dumps({"file": job.file, "width": job.width, **source}))
    entry = _reusable_entry(out_dir, job.file, source)
    if entry is not None:
        tqdm.write(f"{job.file}: reused (written and checked earlier from the same models and data)")
        return entry
    flatbuffer, stripped, check = _convert_and_check(job, clips, config)
    atomic_write_bytes(out_dir / job.file, flatbuffer)
    entry = flatbuffer_entry(job.file, job.kind, job.width, flatbuffer, names_stripped=stripped, verification=check)
    _record_verified(out_dir, job.file, flatbuffer, source, entry)
    return entry


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


def _convert_and_check(job: _Job, clips: _Clips, config: ConvertConfig) -> tuple[bytes, bool, dict[str, Any]]:
    """``job``'s flatbuffer, whether its tensor names were stripped, and its check against Keras
    (:func:`compare`'s record and the agreement required, ``None`` for lossy int8).

    Raises:
        ConversionError: the Keras model's own logits are not finite, or a lossless conversion
            agrees with it on fewer than ``config.min_agreement`` of the clips.
    """
    keras_logits = _keras_logits(job.keras_model, clips.verify)
    if not np.isfinite(keras_logits).all():
        raise ConversionError(
            f"{job.file}: the Keras model's own logits are not finite (NaN/inf) on the "
            "verification clips: its weights are broken (a diverged run?); nothing converted"
        )
    flatbuffer = job.converter(job.exported)
    stripped = False
    if config.strip_names:
        flatbuffer, stripped = strip_tensor_names(flatbuffer, clips.probe)
    check = compare(keras_logits, FlatbufferModel(flatbuffer)(clips.verify), clips.labels)
    lossy = job.kind == KIND_INT8
    check["required_agreement"] = None if lossy else config.min_agreement
    if not lossy and check["top1_agreement"] < config.min_agreement:
        raise ConversionError(
            f"{job.file}: LCE's interpreter agrees with Keras on {check['top1_agreement']:.2%} of "
            f"{check['clips']} clips (required {config.min_agreement:.2%}); max logit "
            f"difference {check['max_abs_logit_diff']:.3g}"
        )
    return flatbuffer, stripped, check


def _keras_logits(model: tf.keras.Model, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model``'s logits on ``inputs``, by batches: ``model.predict``'s numbers, without the
    AutoGraph conversion of every layer that Keras's predict function traces, which took over
    half of a conversion's time once the converters were fast (BENCHMARKS.md, "Conversion time")."""
    forward = tf.function(lambda x: model(x, training=False), autograph=False, reduce_retracing=True)
    return np.concatenate([forward(inputs[i : i + batch_size]).numpy() for i in range(0, len(inputs), batch_size)])


def _record_verified(
    out_dir: Path, file: str, flatbuffer: bytes, source: dict[str, Any], entry: FlatbufferEntry
) -> None:
    """``.verified/FILE.json``: the written ``flatbuffer``'s sha256, what it was made from and its
    manifest entry."""
    # Written after the file: a record always vouches for a complete, checked file.
    record = {"sha256": _sha256(flatbuffer), "source": source, "entry": entry.to_dict(out_dir)}
    atomic_write_text(out_dir / VERIFIED / f"{file}.json", json.dumps(record, indent=2) + "\n")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _sample(count: int | None, total: int, seed: int) -> np.ndarray:
    """Sorted indices of ``count`` of ``total`` items drawn without replacement (all if None)."""
    if count is None or count >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))


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
