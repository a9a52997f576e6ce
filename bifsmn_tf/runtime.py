"""Converted flatbuffers run in LCE's interpreter: what the run-time side needs of the converter.

The spotter (:mod:`bifsmn_tf.stream`) and the conversion's own checks (:mod:`bifsmn_tf.convert`)
both run flatbuffers through :class:`FlatbufferModel`; it lives here so that the spotter needs
neither the converter nor the training stack behind it.
"""

from __future__ import annotations

import numpy as np
from larq_compute_engine.tflite.python.interpreter import Interpreter


class FlatbufferModel:
    """A flatbuffer in LCE's interpreter, called like a Keras model on float arrays.

    ``model(x)`` takes ``(N, *input_shape)`` float32 and returns ``(N, C)`` float32, running the
    samples one by one at batch 1. For int8 inputs or outputs it quantizes and dequantizes with
    the tensors' scales and zero points, so float models and full-integer models are called alike.
    """

    def __init__(self, flatbuffer: bytes, *, num_threads: int = 1) -> None:
        self.interpreter = Interpreter(flatbuffer, num_threads=num_threads)
        if len(self.interpreter.input_shapes) != 1 or len(self.interpreter.output_shapes) != 1:
            raise ValueError("FlatbufferModel: expected one input and one output tensor")
        self.input_shape: tuple[int, ...] = tuple(self.interpreter.input_shapes[0][1:])
        self.input_dtype = np.dtype(self.interpreter.input_types[0])
        self.output_dtype = np.dtype(self.interpreter.output_types[0])

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.shape[1:] != self.input_shape:
            raise ValueError(f"FlatbufferModel: inputs {inputs.shape[1:]} != model input {self.input_shape}")
        if np.issubdtype(self.input_dtype, np.integer):
            scale, zero = self.interpreter.input_scales[0], self.interpreter.input_zero_points[0]
            limits = np.iinfo(self.input_dtype)
            inputs = np.clip(np.round(inputs / scale + zero), limits.min, limits.max).astype(self.input_dtype)
        outputs = self.interpreter.predict(inputs)
        if np.issubdtype(self.output_dtype, np.integer):
            scale, zero = self.interpreter.output_scales[0], self.interpreter.output_zero_points[0]
            outputs = (outputs.astype(np.float32) - zero) * scale
        return np.asarray(outputs, dtype=np.float32).reshape(len(inputs), -1)
