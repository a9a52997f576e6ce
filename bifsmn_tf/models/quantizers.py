"""Binarizers for the BiFSMN student and the baselines it is compared with.

Every quantizer is a Larq ``Quantizer`` (a Keras layer with a ``precision``), usable as the
``input_quantizer``, ``kernel_quantizer`` or ``depthwise_quantizer`` of a Larq layer, with a full
``get_config`` and registered for serialization. A binarization *method* (:class:`Binarizer`) is
a choice of an input quantizer, a kernel quantizer and the activation that follows BN;
:data:`BINARIZERS` holds every method by name, and is what ``ModelConfig.binarizer`` accepts, what
the layers are built from (:func:`input_quantizer`, :func:`kernel_quantizer`) and what
``bifsmn-tf train --binarizer`` offers.

Deployment with LCE: only a kernel whose entries are ``+-scale[out]`` and an input that is exactly
``sign(x)`` (or ``sign(x - b)``: a float ``SUB`` before ``LceQuantize``) make an ``LceBconv2d``; the
per-output scale folds into the following BN (:attr:`Binarizer.lce_binary`). The others are
training baselines; deploying them would need two binary convolutions plus float rescaling per
layer (see :class:`DualScaleSign`).

Forward signs use ``larq.math.sign`` (never 0), the form LCE's converter recognises. PyTorch's
``sign(0) = 0`` only matters for zero padding, which the memory block applies *after* the sign.

The ``build`` methods do not call ``super().build``: Keras marks a layer built by itself, and a
kernel quantizer is first built where AutoGraph converts the calling conv, in which a
zero-argument ``super()`` fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import larq as lq
import tensorflow as tf

WEIGHT_SCALES = ("output_channel", "official")
"""``output_channel``: one scale per output channel (folds into BN; LCE-convertible).
``official``: the released v1 code's scheme, one scale per (output, input) channel pair after
subtracting the global mean of the kernel; for 1x1 kernels that leaves the weights effectively
full precision (docs/design.md#the-official-1x1-weights-are-not-binary), and LCE keeps such
a layer as a float ``CONV_2D``."""

_serializable = tf.keras.utils.register_keras_serializable(package="bifsmn_tf")


def _reduce_axes(rank: int, channel_axes: tuple[int, ...]) -> list[int]:
    kept = {axis % rank for axis in channel_axes}
    return [axis for axis in range(rank) if axis not in kept]


@tf.custom_gradient
def _ede_sign(x: tf.Tensor, t: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    def grad(dy):
        return dy * k * t * (1.0 - tf.square(tf.tanh(t * x))), None, None

    return lq.math.sign(x), grad


@tf.custom_gradient
def _learned_backward_sign(u: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """LPB's ``sign(alpha u)``; its gradient is that of ``clip(alpha u, -1, 1)``, so alpha
    learns the straight-through window and slope."""
    scaled = alpha * u

    def grad(dy):
        passed = dy * tf.cast(tf.abs(scaled) <= 1.0, dy.dtype)
        return passed * alpha, tf.reduce_sum(passed * u)

    return lq.math.sign(scaled), grad


@_serializable
class ChannelScaledSign(lq.quantizers.Quantizer):
    """Sign times the mean magnitude per channel: ``W_b = sign(W) * mean|W|`` over all axes but
    ``channel_axes``; clipped straight-through gradient (``|W| <= clip_value``), scale detached.

    With ``channel_axes=(-1,)`` on a ``(kh, kw, in, out)`` kernel this is the per-output-channel
    scale that LCE folds into the following BN; on a depthwise ``(kh, kw, C, 1)`` kernel use
    ``(-2, -1)``. ``centered=True`` first subtracts the mean of the whole kernel (not detached),
    which with ``channel_axes=(-2, -1)`` is the official v1 ``BiConv*Vanilla`` scheme.
    """

    precision = 1

    def __init__(
        self,
        channel_axes: tuple[int, ...] = (-1,),
        centered: bool = False,
        clip_value: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channel_axes = tuple(channel_axes)
        self.centered = centered
        self.clip_value = clip_value

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.centered:
            inputs = inputs - tf.reduce_mean(inputs)
        axes = _reduce_axes(inputs.shape.rank, self.channel_axes)
        scale = tf.stop_gradient(tf.reduce_mean(tf.abs(inputs), axis=axes, keepdims=True))
        return scale * lq.quantizers.ste_sign(inputs, clip_value=self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "channel_axes": list(self.channel_axes),
            "centered": self.centered,
            "clip_value": self.clip_value,
        }


@_serializable
class PixelScaledSign(lq.quantizers.Quantizer):
    """XNOR-Net activations: ``sign(x) * mean|x|`` over the channel (last) axis, per pixel.

    XNOR-Net's scale map ``K`` is ``mean_c |x|`` averaged over each kernel window; taking it at the
    pixel is exact for 1x1 convolutions and an approximation for fe3 (5x5) and the memory conv.
    Clipped STE for the sign, scale detached. Not convertible to ``LceBconv2d`` (float input).
    """

    precision = 1

    def __init__(self, clip_value: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clip_value = clip_value

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        scale = tf.stop_gradient(tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True))
        return scale * lq.quantizers.ste_sign(inputs, clip_value=self.clip_value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "clip_value": self.clip_value}


@_serializable
class EDESign(lq.quantizers.Quantizer):
    """IR-Net's Error Decay Estimator: forward ``sign(x)``, backward ``k t (1 - tanh^2(t x))``.

    ``t = t_min * (t_max / t_min) ** progress`` and ``k = max(1 / t, 1)``: early in training the
    gradient is close to the identity, late it approaches that of the sign. ``progress`` (0 to 1)
    is a non-trainable weight; set it with :func:`set_training_progress` as training advances.
    """

    precision = 1

    def __init__(self, t_min: float = 0.1, t_max: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.t_min = t_min
        self.t_max = t_max

    def build(self, input_shape: tf.TensorShape) -> None:
        self.progress = self.add_weight(name="progress", shape=(), initializer="zeros", trainable=False)

    def _temperature(self) -> tuple[tf.Tensor, tf.Tensor]:
        t = self.t_min * tf.pow(self.t_max / self.t_min, self.progress)
        return t, tf.maximum(1.0 / t, 1.0)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        t, k = self._temperature()
        return _ede_sign(inputs, t, k)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "t_min": self.t_min, "t_max": self.t_max}


@_serializable
class LibraSign(EDESign):
    """IR-Net's Libra Parameter Binarization for kernels, with the EDE gradient.

    Per channel (all axes but ``channel_axes``) the kernel is standardised to zero mean and unit
    standard deviation (maximising the information entropy of its signs; differentiable), then
    binarised and scaled by the power of two nearest to its mean magnitude (detached), a shift on
    hardware. The scale is per output channel, so LCE folds it like :class:`ChannelScaledSign`.
    """

    def __init__(self, channel_axes: tuple[int, ...] = (-1,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel_axes = tuple(channel_axes)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        axes = _reduce_axes(inputs.shape.rank, self.channel_axes)
        mean, variance = tf.nn.moments(inputs, axes=axes, keepdims=True)
        balanced = (inputs - mean) / tf.sqrt(variance + 1e-12)
        magnitude = tf.reduce_mean(tf.abs(balanced), axis=axes, keepdims=True)
        scale = tf.stop_gradient(tf.pow(2.0, tf.round(tf.math.log(magnitude) / tf.math.log(2.0))))
        t, k = self._temperature()
        return scale * _ede_sign(balanced, t, k)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channel_axes": list(self.channel_axes)}


@_serializable
class ThresholdSign(lq.quantizers.Quantizer):
    """ReActNet's RSign: ``sign(x - beta)`` with a learnable threshold ``beta`` per channel (last
    axis, initialised to 0) and the ApproxSign gradient ``2 - 2|x - beta|``.

    LCE converts the shift to a float ``SUB`` before ``LceQuantize``; the conv stays binary.
    """

    precision = 1

    def build(self, input_shape: tf.TensorShape) -> None:
        self.threshold = self.add_weight(
            name="threshold", shape=(input_shape[-1],), initializer="zeros", trainable=True
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return lq.quantizers.approx_sign(inputs - self.threshold)


@_serializable
class DualScaleSign(lq.quantizers.Quantizer):
    """BiFSMNv2's dual-scale activation of the Learning Propagation Binarizer.

    docs/design.md#the-learning-propagation-binarizer-bifsmnv2.

    With learnable per-channel thresholds ``tau0, tau1, tau2`` (initialised U(0, 0.001)) and
    learnable scalars ``alpha1, alpha2`` (initialised 1)::

        b1 = sign(alpha1 (x - tau0))              # +-1
        r  = x - b1 - tau1                        # what the first bit missed
        s  = mean |r| over the channel axis       # per pixel, detached
        a  = b1 + s sign(alpha2 r) - tau2         # two binary planes, the second scaled by s

    and each sign's gradient is that of ``clip(alpha u, -1, 1)`` (alpha learns the backward).

    The official code takes ``s`` over the channels for its Linear layers and over time for its
    1x1 Conv1d; here it is over the channels everywhere, the variant that deploys as two binary
    convolutions ``conv(b1, W) + s * conv(sign(r), W) - conv(tau2, W)``. With ``s`` per input
    channel (the Conv1d variant) the second term does not factor out of an XNOR-popcount sum.
    LCE's converter sees a float input and keeps a float ``CONV_2D``: a training option only.
    """

    precision = 2

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = (input_shape[-1],)
        self.thresholds = [
            self.add_weight(
                name=f"tau{i}",
                shape=channels,
                initializer=tf.keras.initializers.RandomUniform(0.0, 1e-3),
                trainable=True,
            )
            for i in range(3)
        ]
        self.alphas = [
            self.add_weight(name=f"alpha{i + 1}", shape=(), initializer="ones", trainable=True) for i in range(2)
        ]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        tau0, tau1, tau2 = self.thresholds
        alpha1, alpha2 = self.alphas
        first = _learned_backward_sign(inputs - tau0, alpha1)
        residual = inputs - first - tau1
        scale = tf.stop_gradient(tf.reduce_mean(tf.abs(residual), axis=-1, keepdims=True))
        return first + scale * _learned_backward_sign(residual, alpha2) - tau2


@_serializable
class LearnedBackwardScaledSign(lq.quantizers.Quantizer):
    """LPB's kernel binarizer: ``sign(alpha3 W) * mean|W|`` over all axes but ``channel_axes``
    (detached), the gradient that of ``clip(alpha3 W, -1, 1)`` with a learnable scalar ``alpha3``.

    The official v2 code averages per (output, input) pair, which leaves 1x1 kernels full
    precision (docs/design.md#the-official-1x1-weights-are-not-binary); here the scale is per
    output channel, like :class:`ChannelScaledSign`.
    """

    precision = 1

    def __init__(self, channel_axes: tuple[int, ...] = (-1,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channel_axes = tuple(channel_axes)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.alpha = self.add_weight(name="alpha3", shape=(), initializer="ones", trainable=True)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        axes = _reduce_axes(inputs.shape.rank, self.channel_axes)
        scale = tf.stop_gradient(tf.reduce_mean(tf.abs(inputs), axis=axes, keepdims=True))
        return scale * _learned_backward_sign(inputs, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channel_axes": list(self.channel_axes)}


@dataclasses.dataclass(frozen=True)
class Binarizer:
    """A binarization method: how a binary layer's inputs and weights become 1-bit.

    Attributes:
        name: What ``ModelConfig.binarizer`` and ``bifsmn-tf train --binarizer`` call it.
        activations: How an input is binarized (forward, and its gradient).
        weights: How a kernel is binarized.
        input_quantizer: Makes a fresh activation quantizer (one per layer: some carry weights).
        kernel_quantizer: Makes a fresh kernel quantizer from the kernel's output-channel axes.
        mean_scaled: The kernel is scaled by its mean magnitude, so ``weight_scale`` applies.
        sign_input: The activation quantizer outputs exactly ``sign(x)`` in the forward pass
            (only its gradient differs). In front of it, a PReLU whose slope stays positive
            changes nothing at inference: ``sign(PReLU(x)) = sign(x)``.
        rprelu: ReActNet's RPReLU follows BN instead of PReLU.
        lce_binary: LCE converts its layers to ``LceBconv2d``; otherwise the converter sees a
            float input and keeps a float ``CONV_2D``.
    """

    name: str
    activations: str
    weights: str
    input_quantizer: Callable[[], lq.quantizers.Quantizer]
    kernel_quantizer: Callable[[tuple[int, ...]], lq.quantizers.Quantizer]
    mean_scaled: bool = True
    sign_input: bool = True
    rprelu: bool = False
    lce_binary: bool = True


def _mean_scaled_kernel(channel_axes: tuple[int, ...]) -> lq.quantizers.Quantizer:
    return ChannelScaledSign(channel_axes=channel_axes)


#: Every binarization method by name, the paper's first.
BINARIZERS: dict[str, Binarizer] = {
    method.name: method
    for method in (
        Binarizer(
            "bifsmn",
            "sign, clipped STE",
            "sign x per-output-channel mean|W|, STE",
            lq.quantizers.SteSign,
            _mean_scaled_kernel,
        ),
        Binarizer(
            "bnn",
            "sign, clipped STE",
            "sign, STE (no scale)",
            lq.quantizers.SteSign,
            lambda axes: lq.quantizers.SteSign(),
            mean_scaled=False,
        ),
        Binarizer(
            "xnor",
            "sign x per-pixel mean|x| over channels, STE",
            "sign x per-output-channel mean|W|, STE",
            PixelScaledSign,
            _mean_scaled_kernel,
            sign_input=False,
            lce_binary=False,
        ),
        Binarizer(
            "bireal",
            "sign, ApproxSign gradient (2 - 2|x|)",
            "sign x per-output-channel mean|W|, STE",
            lq.quantizers.ApproxSign,
            _mean_scaled_kernel,
        ),
        Binarizer(
            "irnet",
            "sign, EDE gradient (scheduled tanh)",
            "Libra-PB: standardised, sign x 2^round(log2 mean|W|), EDE gradient",
            EDESign,
            lambda axes: LibraSign(channel_axes=axes),
            mean_scaled=False,
        ),
        Binarizer(
            "reactnet",
            "sign(x - learnable per-channel threshold), ApproxSign gradient",
            "sign x per-output-channel mean|W|, STE; RPReLU after BN instead of PReLU",
            ThresholdSign,
            _mean_scaled_kernel,
            sign_input=False,
            rprelu=True,
        ),
        Binarizer(
            "lpb",
            "BiFSMNv2 dual-scale b1 + s_r b2 - tau2 (learnable thresholds and backward)",
            "sign(alpha3 W) x per-output-channel mean|W|, learnable backward",
            DualScaleSign,
            lambda axes: LearnedBackwardScaledSign(channel_axes=axes),
            mean_scaled=False,
            sign_input=False,
            lce_binary=False,
        ),
    )
}

SIGN_INPUT_BINARIZERS = tuple(name for name, method in BINARIZERS.items() if method.sign_input)
"""Binarizers whose activation quantizer outputs exactly ``sign(x)`` (:attr:`Binarizer.sign_input`)."""


def binarizer(name: str) -> Binarizer:
    """The method called ``name``; an unknown name is a ``ValueError`` listing the choices."""
    if name not in BINARIZERS:
        raise ValueError(f"binarizer: unknown {name!r}; choose one of {', '.join(BINARIZERS)}")
    return BINARIZERS[name]


def input_quantizer(name: str) -> lq.quantizers.Quantizer:
    """A fresh activation quantizer of the binarizer ``name`` (one per layer: some carry weights)."""
    return binarizer(name).input_quantizer()


def kernel_quantizer(
    name: str, weight_scale: str = "output_channel", depthwise: bool = False
) -> lq.quantizers.Quantizer:
    """A fresh kernel quantizer of the binarizer ``name``.

    ``depthwise``: the kernel is ``(kh, kw, C, 1)`` and its output channel is axis -2.
    ``weight_scale`` (:data:`WEIGHT_SCALES`) applies to the mean-magnitude scaled binarizers
    (:attr:`Binarizer.mean_scaled`).
    """
    method = binarizer(name)
    if weight_scale not in WEIGHT_SCALES:
        raise ValueError(f"weight_scale: unknown {weight_scale!r}; choose one of {', '.join(WEIGHT_SCALES)}")
    if method.mean_scaled and weight_scale == "official":
        return ChannelScaledSign(channel_axes=(-2, -1), centered=True)
    return method.kernel_quantizer((-2, -1) if depthwise else (-1,))


def set_training_progress(model: tf.keras.Model, progress: float) -> int:
    """Set the schedule position (0 = start, 1 = end of training) of every progress-driven
    quantizer in ``model`` (IR-Net's EDE); returns how many were set (0 for other binarizers)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress: must be in [0, 1], got {progress}")
    scheduled = [module for module in model.submodules if isinstance(module, EDESign)]
    for quantizer in scheduled:
        quantizer.progress.assign(progress)
    return len(scheduled)
