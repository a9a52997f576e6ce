"""Keras -> flatbuffer bytes, and what a model goes through around that.

The converters: :func:`convert_binary` (LCE's, for the 1-bit student), :func:`convert_float`
and :func:`convert_int8` (TFLite's, for the FP teacher). Around them: :func:`with_audio_frontend`
puts the feature frontend in front of a model, :func:`untie_signs` readies a student's BN zeros
before it is converted, :func:`strip_tensor_names` takes the names out of a converted file.
:mod:`bifsmn_tf.convert` uses them to convert, check and record a run's models.
"""

from __future__ import annotations

import tempfile

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.dfsmn import model_config, model_kind
from bifsmn_tf.models.layers import DFSMNBlock
from bifsmn_tf.runtime import FlatbufferModel


def with_audio_frontend(model: tf.keras.Model, feature_config: FeatureConfig) -> tf.keras.Model:
    """``model`` behind the feature frontend: ``(B, clip_samples)`` waveforms -> ``model``'s output."""
    waveforms = tf.keras.Input((feature_config.clip_samples,), name="audio")
    features = build_frontend(feature_config)(waveforms)
    return tf.keras.Model(waveforms, model(features), name=f"{model.name}_audio")


def convert_binary(model: tf.keras.Model) -> bytes:
    """LCE's converter: binary convolutions become ``LceBconv2d``; float I/O, ARM target.

    The bytes of ``lce.convert_keras_model(model)``, which converts a SavedModel of the Keras
    model; this one's SavedModel holds the serving function and the variables only (see
    :func:`_variables_of`).
    """
    spec = tf.TensorSpec(model.input_shape, model.input.dtype, name=model.input_names[0])
    serve = tf.function(
        lambda inputs: dict(zip(model.output_names, tf.nest.flatten(model(inputs, training=False)), strict=True)),
        input_signature=[spec],
        autograph=False,
    )
    with tempfile.TemporaryDirectory(prefix="bifsmn-lce-") as directory:
        tf.saved_model.save(_variables_of(model), directory, signatures=serve.get_concrete_function())
        return lce.convert_saved_model(directory)


def _variables_of(model: tf.keras.Model) -> tf.Module:
    """A module that tracks ``model``'s variables and nothing else, for the SavedModel a converter
    writes of a function of ``model``. Given the Keras model instead, saving runs Keras's own
    SavedModel serialisation, which traces every layer's call through AutoGraph: nine tenths of
    a conversion's time, for the same flatbuffer bytes (BENCHMARKS.md, "Conversion time")."""
    module = tf.Module()
    module.model_variables = list(model.variables)
    return module


def _batch_one_converter(model: tf.keras.Model) -> tf.lite.TFLiteConverter:
    """TFLite's converter on ``model`` at batch size 1, as LCE's converter fixes it: a dynamic
    batch would add run-time shape ops (SHAPE, STRIDED_SLICE, PACK) to the teachers only."""
    signature = tf.TensorSpec([1, *model.input_shape[1:]], model.input.dtype)
    function = tf.function(lambda inputs: model(inputs, training=False), autograph=False).get_concrete_function(
        signature
    )
    return tf.lite.TFLiteConverter.from_concrete_functions([function], _variables_of(model))


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
    pairs = [(block.expand, block.batch_norms(width)[1]) for block in blocks for width in block.branches]
    pairs = list({id(bn): (conv, bn) for conv, bn in pairs}.values())  # a shared BN once
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
