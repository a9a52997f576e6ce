"""Storage of the 1-bit student against the FP32 D-FSMN, two ways: the manifest's ``storage``.

Both against the FP32 D-FSMN of the published architecture (the paper's baseline, which is the
teacher of a ``paper`` run; a ``lean`` run's teacher has the lean head, and its ratios are
reported too). ``parameter_count_ratio`` is the paper's way of counting: 32 bits per baseline
parameter against 1 bit per binarized weight plus 32 per other parameter of the full-width
student (parameters = trainable weights, as in PyTorch; BN moving statistics are buffers).
``flatbuffer_ratio`` is the real thing: bytes of the baseline's float TFLite file over bytes of
the full-width student's LCE file, both with tensor names stripped (when that leaves the outputs
bit-identical, which is checked). The difference is what a deployable file carries beyond the
weights: per-channel scales and biases of every binary convolution, float depthwise memory
weights, PReLU slopes, graph structure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from bifsmn_tf.converters import convert_float, strip_tensor_names
from bifsmn_tf.models.dfsmn import ModelConfig, build_teacher, model_config, weight_counts, width_model
from bifsmn_tf.records import KIND_FP32, KIND_STUDENT, FlatbufferEntry

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


def storage_record(
    student: tf.keras.Model,
    teacher: tf.keras.Model,
    entries: Sequence[FlatbufferEntry],
    width: int,
    probe: np.ndarray,
    *,
    wrap: Callable[[tf.keras.Model], tf.keras.Model],
    strip: bool,
) -> dict[str, Any]:
    """The manifest's ``storage``: the student at ``width`` against the published baseline and
    against the run's own teacher, by parameter bits and by file bytes (:data:`STORAGE_NOTE`).

    Args:
        student: the BiFSMN student that was converted.
        teacher: its FP teacher; it is the baseline when its profile is ``paper``.
        entries: the manifest entries of the converted files: the student's at ``width`` and
            the float teacher's give the file bytes.
        width: the student's full width.
        probe: inputs of the converted models, for :func:`published_baseline`.
        wrap: what the converted models were wrapped in (the audio frontend, or nothing).
        strip: whether the converted files had their tensor names stripped.

    Returns:
        The ratios, the bits and bytes they come from, and how they are counted.
    """
    student_bits = storage_bits(student, width)
    teacher_bits = storage_bits(teacher)
    teacher_bytes = next(e.bytes for e in entries if e.kind == KIND_FP32)
    student_bytes = next(e.bytes for e in entries if e.kind == KIND_STUDENT and e.width == width)
    if model_config(teacher).profile == BASELINE_PROFILE:
        baseline_bits, baseline_bytes = teacher_bits, teacher_bytes
    else:
        baseline_bits, baseline_bytes = published_baseline(model_config(teacher), probe, wrap=wrap, strip=strip)
    return {
        "parameter_count_ratio": baseline_bits / student_bits,
        "flatbuffer_ratio": baseline_bytes / student_bytes,
        "baseline_fp32_bytes": baseline_bytes,
        "baseline_parameter_bits": baseline_bits,
        "student_parameter_bits": student_bits,
        "student_bytes": student_bytes,
        "student_width": width,
        "teacher_fp32_bytes": teacher_bytes,
        "parameter_count_ratio_vs_run_teacher": teacher_bits / student_bits,
        "flatbuffer_ratio_vs_run_teacher": teacher_bytes / student_bytes,
        "how": STORAGE_NOTE,
    }
