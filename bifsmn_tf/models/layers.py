"""Deep-FSMN layers on time sequences laid out as NHWC images ``(B, T, 1, C)``.

The sequence layout is what makes binary layers binary after conversion: LCE only turns
``Conv2D``-shaped Larq layers into ``LceBconv2d`` (docs/conversion.md), so the 1x1 fc-transform
convolutions are ``QuantConv2D`` 1x1 over a ``(T, 1)`` map. Full precision and binary are one code
path: a layer without quantizers is a float layer, one with sign quantizers is binary.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import larq as lq
import tensorflow as tf

ACTIVATIONS = ("relu", "prelu", "rprelu")
"""Names understood by :func:`activation_layer`."""

QuantizerSpec = str | dict[str, Any] | lq.quantizers.Quantizer | None

_serializable = tf.keras.utils.register_keras_serializable(package="bifsmn_tf")


@_serializable
class SlopeFloor(tf.keras.constraints.Constraint):
    """Keeps activation slopes at or above ``min_value`` (> 0).

    In the binary network a PReLU's output often goes straight into a sign, and
    ``sign(PReLU_a(x)) = sign(x)`` only while ``a > 0``: at ``a <= 0`` every negative input turns
    non-negative, the sign is ``+1`` everywhere and the layers after it see a constant. The sign
    hides the slope's effect, so its gradient carries no warning; with Adam, whose steps have
    the size of the learning rate whatever the gradient, a front-end slope crossed zero within
    seven epochs of the demo recipe and the student fell to chance for good.
    """

    def __init__(self, min_value: float = 0.01) -> None:
        if min_value <= 0:
            raise ValueError(f"SlopeFloor: min_value must be > 0, got {min_value}")
        self.min_value = min_value

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        return tf.maximum(w, self.min_value)

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value}


@_serializable
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU on ``(..., C)``: ``PReLU(x - gamma) + zeta`` with per-channel shifts
    ``gamma``, ``zeta`` (initialised 0) and per-channel slopes (initialised 0.25). Shape kept."""

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = (input_shape[-1],)
        self.shift_in = self.add_weight(name="gamma", shape=channels, initializer="zeros")
        self.slope = self.add_weight(
            name="alpha",
            shape=channels,
            initializer=tf.keras.initializers.Constant(0.25),
            constraint=SlopeFloor(),
        )
        self.shift_out = self.add_weight(name="zeta", shape=channels, initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        shifted = inputs - self.shift_in
        return tf.where(shifted >= 0, shifted, self.slope * shifted) + self.shift_out


@_serializable
class ThresholdCopies(tf.keras.layers.Layer):
    """``(..., C) -> (..., K*C)``: the input minus each of ``K`` thresholds, copies concatenated
    along channels (copy ``k`` of channel ``c`` at ``k*C + c``).

    In front of a binary convolution, whose input quantizer takes the sign, this binarizes every
    channel at ``K`` thresholds instead of at 0 alone: a thermometer code of the value with
    ``K + 1`` levels, still read by a 1-bit convolution (``LceBconv2d``) that has ``K`` times the
    input channels and binary weights. The thresholds are constants; the BN and RPReLU before
    the layer learn where the values sit relative to them.
    """

    def __init__(self, thresholds: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) < 2 or list(thresholds) != sorted(set(thresholds)):
            raise ValueError(f"ThresholdCopies: need 2+ distinct increasing thresholds, got {thresholds}")
        self.thresholds = thresholds

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.concat([inputs - t for t in self.thresholds], axis=-1)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape(shape[:-1] + [None if shape[-1] is None else shape[-1] * len(self.thresholds)])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": list(self.thresholds)}


def activation_layer(kind: str, name: str | None = None) -> tf.keras.layers.Layer:
    """The activation ``kind`` for 4-D ``(B, H, W, C)`` inputs.

    ``prelu`` has one slope per layer, initialised to 0.25, like PyTorch's ``nn.PReLU()`` of the
    official code (Keras's default ``PReLU`` has one per element: 32x the parameters of a block
    output, all of them float in the flatbuffer). Slopes of ``prelu`` and ``rprelu``
    stay positive (:class:`SlopeFloor`).
    """
    if kind == "relu":
        return tf.keras.layers.ReLU(name=name)
    if kind == "prelu":
        return tf.keras.layers.PReLU(
            alpha_initializer=tf.keras.initializers.Constant(0.25),
            alpha_constraint=SlopeFloor(),
            shared_axes=[1, 2, 3],
            name=name,
        )
    if kind == "rprelu":
        return RPReLU(name=name)
    raise ValueError(f"activation: unknown {kind!r}; choose one of {', '.join(ACTIVATIONS)}")


@_serializable
class MemoryBlock(lq.layers.QuantDepthwiseConv2D):
    """The FSMN memory: a depthwise convolution over time, ``(B, T, 1, C) -> (B, T, 1, C)``.

    Output frame ``t`` mixes, per channel, input frames ``t - left_order*dilation`` to
    ``t + right_order*dilation`` in steps of ``dilation``. Frames outside the sequence are zero
    *after* the input quantizer, so they contribute nothing, as PyTorch's ``sign(0) = 0`` does in
    the official code. Symmetric orders use the convolution's own SAME padding (no ``PAD`` op in
    TFLite); asymmetric orders pad explicitly.

    Binary in training when given sign quantizers. LCE has no binary depthwise convolution (binary
    grouped convolutions need >= 32 channels per group), so after conversion this runs as a float
    ``DEPTHWISE_CONV_2D`` on the +-1 input (``LceQuantize -> LceDequantize -> DEPTHWISE_CONV_2D``)
    with the +-scale kernel stored as floats: the same numbers, 5 MACs per channel and frame.
    """

    def __init__(self, left_order: int = 2, right_order: int = 2, dilation: int = 1, **kwargs: Any) -> None:
        if left_order < 0 or right_order < 0 or dilation < 1:
            raise ValueError(
                f"MemoryBlock: orders must be >= 0 and dilation >= 1, got left_order={left_order}, "
                f"right_order={right_order}, dilation={dilation}"
            )
        self.left_order = left_order
        self.right_order = right_order
        self.dilation = dilation
        super().__init__(
            kernel_size=(left_order + right_order + 1, 1),
            dilation_rate=(dilation, 1),
            padding="same" if left_order == right_order else "valid",
            **kwargs,
        )

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.left_order == self.right_order:
            return super().call(inputs)
        if self.input_quantizer is not None:
            inputs = self.input_quantizer(inputs)
        before, after = self.left_order * self.dilation, self.right_order * self.dilation
        inputs = tf.pad(inputs, [[0, 0], [before, after], [0, 0], [0, 0]])
        with lq.context.quantized_scope(True):
            return tf.keras.layers.DepthwiseConv2D.call(self, inputs)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for derived in ("kernel_size", "dilation_rate", "padding", "strides", "depth_multiplier"):
            config.pop(derived)
        return {
            **config,
            "left_order": self.left_order,
            "right_order": self.right_order,
            "dilation": self.dilation,
        }


@dataclasses.dataclass(frozen=True)
class _QuantizerRecipe:
    """How to make a quantizer: each sub-layer gets its own instance (quantizers with learnable
    thresholds must not be shared). Resolved once, when the block is configured, because Keras
    can only look a registered class up in the serialization format of the calling scope
    (SavedModel loading uses the legacy one)."""

    cls: type
    config_json: str

    @classmethod
    def of(cls, spec: QuantizerSpec) -> _QuantizerRecipe | None:
        if spec is None:
            return None
        quantizer = lq.quantizers.get(spec)
        if not isinstance(quantizer, lq.quantizers.Quantizer):
            raise TypeError(f"quantizer must be a Larq Quantizer layer, got {spec!r}")
        return cls(type(quantizer), json.dumps(quantizer.get_config()))

    def new(self) -> lq.quantizers.Quantizer:
        return self.cls.from_config(json.loads(self.config_json))


def _new_quantizer(recipe: _QuantizerRecipe | None) -> lq.quantizers.Quantizer | None:
    return None if recipe is None else recipe.new()


def _serialize(recipe: _QuantizerRecipe | None) -> dict[str, Any] | None:
    return None if recipe is None else lq.quantizers.serialize(recipe.new())


@_serializable
class DFSMNBlock(tf.keras.layers.Layer):
    """One Deep-FSMN block (docs/design.md#the-model), ``(B, T, 1, C) -> (B, T, 1, C)``::

        m = act_m(BN_m(memory(x))) + x                          # memory + skip
        u = dropout(act_h(BN_h(expand(m))))                     # 1x1 conv C -> hidden_size
        y = act_o[w](BN_o[w](project(u))) + m                   # 1x1 conv hidden_size -> C, skip

    Full precision without quantizers (the teacher); binary with them (the student): the memory
    conv, ``expand`` and ``project`` then see sign activations and 1-bit weights, while BN, the
    activations and the residual adds stay float (the float residual stream of the paper).
    ``expand`` and ``project`` become ``LceBconv2d`` after conversion, the memory conv a float
    depthwise conv (see :class:`MemoryBlock`).

    Thinnable (docs/design.md#thinnable-depth-tba): ``branches`` lists the widths at which the
    block runs; each has its own output BN and activation (``output_bn_w{width}``,
    ``output_act_w{width}``), chosen by ``call(..., width=...)``. Everything else is shared by
    all widths, ``BN_m`` and ``BN_h`` too unless ``per_width_batch_norm``: then each width has
    its own (``memory_bn_w{width}``, ``hidden_bn_w{width}``), as the slimmable networks' switchable
    BN. A block that runs at several widths sees a different input at each (the blocks before it
    differ), and shared BN statistics are a mixture of them that fits none.

    Args:
        hidden_size: channels of the expanded fc-transform.
        left_order: the memory's look-back, in time steps.
        right_order: the memory's look-ahead, in time steps.
        dilation: the memory's stride over time.
        input_quantizer: activation quantizer for the three convolutions (name, config dict or
            instance; each conv gets its own copy), ``None`` for float.
        quantize_memory_input: ``False`` feeds the memory conv the float input instead (the 1x1
            convs keep ``input_quantizer``); see ``ModelConfig.memory_input``.
        kernel_quantizer: kernel quantizer of the 1x1 convs; ``depthwise_quantizer`` that of the
            memory conv (its output channel is axis -2 of the kernel).
        kernel_constraint: constraint of all three kernels (``"weight_clip"`` for binary ones).
        use_bias: biases on the three convolutions (each is followed by BN, so they are redundant;
            the teacher keeps them to match the official parameter count).
        activation: memory and output activation; ``hidden_activation``: after ``BN_h``.
        dropout: rate after the hidden activation (teacher 0.2).
        branches: widths with their own output BN/activation; ``(num_blocks,)`` for the teacher.
        per_width_batch_norm: ``BN_m`` and ``BN_h`` per branch too (moot with one branch).
    """

    def __init__(
        self,
        hidden_size: int = 256,
        left_order: int = 2,
        right_order: int = 2,
        dilation: int = 1,
        input_quantizer: QuantizerSpec = None,
        kernel_quantizer: QuantizerSpec = None,
        depthwise_quantizer: QuantizerSpec = None,
        kernel_constraint: str | None = None,
        quantize_memory_input: bool = True,
        use_bias: bool = True,
        activation: str = "prelu",
        hidden_activation: str = "relu",
        dropout: float = 0.0,
        branches: Sequence[int] = (8,),
        per_width_batch_norm: bool = False,
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not branches:
            raise ValueError(f"DFSMNBlock {self.name}: branches must name at least one width")
        for kind in (activation, hidden_activation):
            if kind not in ACTIVATIONS:
                raise ValueError(f"DFSMNBlock {self.name}: unknown activation {kind!r}")
        self.hidden_size = hidden_size
        self.left_order = left_order
        self.right_order = right_order
        self.dilation = dilation
        self.input_quantizer = _QuantizerRecipe.of(input_quantizer)
        self.kernel_quantizer = _QuantizerRecipe.of(kernel_quantizer)
        self.depthwise_quantizer = _QuantizerRecipe.of(depthwise_quantizer)
        self.kernel_constraint = kernel_constraint
        self.quantize_memory_input = quantize_memory_input
        self.use_bias = use_bias
        self.activation = activation
        self.hidden_activation = hidden_activation
        self.dropout = dropout
        self.branches = tuple(int(width) for width in branches)
        self.per_width_batch_norm = bool(per_width_batch_norm)
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    def _batch_norm(self, name: str) -> tf.keras.layers.BatchNormalization:
        return tf.keras.layers.BatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon, name=name)

    @property
    def _own_inner_batch_norms(self) -> bool:
        return self.per_width_batch_norm and len(self.branches) > 1

    def batch_norms(self, width: int | None = None) -> tuple[tf.keras.layers.BatchNormalization, ...]:
        """``(BN_m, BN_h, BN_o)`` run at ``width`` (at the one branch when ``None``)."""
        branch = self._branch(width)
        if self._own_inner_batch_norms:
            return self.memory_bns[branch], self.hidden_bns[branch], self.output_bns[branch]
        return self.memory_bn, self.hidden_bn, self.output_bns[branch]

    def _branch(self, width: int | None) -> int:
        if width is None:
            if len(self.branches) != 1:
                raise ValueError(f"{self.name}: pass width=, one of {self.branches}")
            return 0
        if width not in self.branches:
            raise ValueError(f"{self.name}: does not run at width {width}; it runs at {self.branches}")
        return self.branches.index(width)

    def _pointwise(self, filters: int, name: str) -> lq.layers.QuantConv2D:
        return lq.layers.QuantConv2D(
            filters,
            1,
            input_quantizer=_new_quantizer(self.input_quantizer),
            kernel_quantizer=_new_quantizer(self.kernel_quantizer),
            kernel_constraint=self.kernel_constraint,
            use_bias=self.use_bias,
            name=name,
        )

    def build(self, input_shape: tf.TensorShape) -> None:
        channels = int(input_shape[-1])
        self.memory = MemoryBlock(
            self.left_order,
            self.right_order,
            self.dilation,
            input_quantizer=(_new_quantizer(self.input_quantizer) if self.quantize_memory_input else None),
            depthwise_quantizer=_new_quantizer(self.depthwise_quantizer),
            depthwise_constraint=self.kernel_constraint,
            use_bias=self.use_bias,
            name="memory",
        )
        if self._own_inner_batch_norms:
            self.memory_bns = [self._batch_norm(f"memory_bn_w{width}") for width in self.branches]
            self.hidden_bns = [self._batch_norm(f"hidden_bn_w{width}") for width in self.branches]
        else:
            self.memory_bn = self._batch_norm("memory_bn")
            self.hidden_bn = self._batch_norm("hidden_bn")
        self.memory_act = activation_layer(self.activation, "memory_act")
        self.expand = self._pointwise(self.hidden_size, "expand")
        self.hidden_act = activation_layer(self.hidden_activation, "hidden_act")
        self.hidden_dropout = tf.keras.layers.Dropout(self.dropout) if self.dropout else None
        self.project = self._pointwise(channels, "project")
        self.output_bns = [self._batch_norm(f"output_bn_w{width}") for width in self.branches]
        self.output_acts = [activation_layer(self.activation, f"output_act_w{width}") for width in self.branches]
        super().build(input_shape)

    def call(
        self,
        inputs: tf.Tensor,
        width: int | None = None,
        training: bool | None = None,
        skip_hidden_activation: bool = False,
    ) -> tf.Tensor:
        """``width``: the branch to run (required when there are several).

        ``skip_hidden_activation`` leaves ``act_h`` out, for inference graphs handed to LCE: with
        a ``prelu`` (slope kept positive by :class:`SlopeFloor`) feeding ``project``'s sign
        quantizer it does not change the sign, and without it LCE fuses ``expand`` -> ``BN_h`` ->
        sign into one binary convolution that writes bitpacked output. The caller vouches that
        the input quantizer's forward pass is the plain sign
        (:data:`~bifsmn_tf.models.quantizers.SIGN_INPUT_BINARIZERS`).
        """
        if skip_hidden_activation and (self.hidden_activation != "prelu" or self.input_quantizer is None):
            raise ValueError(
                f"{self.name}: only a PReLU read by a sign quantizer can be skipped; this block "
                f"has {self.hidden_activation!r} and "
                f"{'a' if self.input_quantizer else 'no'} input quantizer"
            )
        memory_bn, hidden_bn, output_bn = self.batch_norms(width)
        memory = self.memory_act(memory_bn(self.memory(inputs), training=training)) + inputs
        hidden = hidden_bn(self.expand(memory), training=training)
        if not skip_hidden_activation:
            hidden = self.hidden_act(hidden)
        if self.hidden_dropout is not None:
            hidden = self.hidden_dropout(hidden, training=training)
        projected = output_bn(self.project(hidden), training=training)
        return self.output_acts[self._branch(width)](projected) + memory

    def weights_at(self, width: int) -> list[tf.Variable]:
        """The trainable weights used at ``width``: the shared ones and that width's branch."""
        branch = self._branch(width)
        per_branch = [self.output_bns, self.output_acts]
        if self._own_inner_batch_norms:
            per_branch += [self.memory_bns, self.hidden_bns]
        unused = [
            weight
            for layers in per_branch
            for index, layer in enumerate(layers)
            if index != branch
            for weight in layer.trainable_weights
        ]
        return [w for w in self.trainable_weights if not any(w is u for u in unused)]

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "left_order": self.left_order,
            "right_order": self.right_order,
            "dilation": self.dilation,
            "input_quantizer": _serialize(self.input_quantizer),
            "kernel_quantizer": _serialize(self.kernel_quantizer),
            "depthwise_quantizer": _serialize(self.depthwise_quantizer),
            "kernel_constraint": self.kernel_constraint,
            "quantize_memory_input": self.quantize_memory_input,
            "use_bias": self.use_bias,
            "activation": self.activation,
            "hidden_activation": self.hidden_activation,
            "dropout": self.dropout,
            "branches": list(self.branches),
            "per_width_batch_norm": self.per_width_batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
        }
