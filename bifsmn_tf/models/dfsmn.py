"""The D-FSMN teacher and the thinnable BiFSMN student (docs/design.md).

Both take the log-mel features ``(B, T=32, F=32)`` (time first) and return logits ``(B, C)``::

    features (B,T,F) -> (B,T,F,1)
    fe0  conv 5x5/2, 1 -> 16, BN, act             float in both models        (B,T/2,F/2,16)
    fe3  conv 5x5/2, 16 -> 32, BN, act            binary in the student       (B,T/4,F/4,32)
    reshape to a sequence                                                     (B,T'=8,1,256)
    fc1  1x1 conv 256 -> 128, act                 binary in the student       (B,8,1,128)
    8 x DFSMNBlock (memory, 1x1 expand/project)   binary in the student       (B,8,1,128)
    head: flatten -> Dense 1024 -> C (profile "paper") or mean over time -> Dense 128 -> C ("lean")

Convolutions use TF's SAME padding (for the stride-2 front end TF pads 1 before / 2 after where
PyTorch's ``padding=2`` effectively pads 2 before / 1 after: a one-pixel shift of the sampling
grid, same shapes and counts). The teacher uses ReLU where the official ``DfsmnModel_pre`` does
(front end, fc1, hidden) and dropout 0.2; the student has PReLU everywhere (RPReLU for
``reactnet``), no dropout, and per-width output BN/activation branches in its blocks.

Parameter counts (trainable weights; BN moving statistics are Keras's non-trainable weights and
are buffers, not parameters, in PyTorch): the teacher has exactly the official 600,252 (12 classes)
/ 623,827 (35 classes). The ``bifsmn`` student has 597,934 for 12 classes against the official
606,431; the 8,497 difference is

* 4,128 conv biases the student drops because BN follows (fe3 32, and per block memory 128 +
  expand 256 + project 128); the binary weight scales are computed, not learned: no parameters;
* 4,369 = 17 x 257: the official code gives every block 4 output BN(128)+PReLU(1) branches (32);
  here a block has a branch only for the widths that execute it (15: blocks 0/2/4/6 one, 1/5 two,
  3 three, 7 four).

Profiles (``ModelConfig.profile``): ``paper`` is the published network; ``lean`` replaces the
flatten -> 1024 x C classifier by a mean over time -> 128 x C. Both use one PReLU slope per layer
(as PyTorch's ``nn.PReLU()``) and zero padding in the memory conv without a ``PAD`` op (the
published semantics, see ``MemoryBlock``). The lean head saves the 1024 x 12 float classifier
(48 KB); the flatbuffer sizes of both: BENCHMARKS.md, "`paper` vs `lean` profile".
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import larq as lq
import tensorflow as tf

from bifsmn_tf.config import ConfigError, JsonConfig, non_finite_fields, read_json
from bifsmn_tf.fileio import atomic_directory, atomic_write_text
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.layers import DFSMNBlock, ThresholdCopies, activation_layer

PROFILES = ("paper", "lean")
MEMORY_INPUTS = ("binary", "float")
KINDS = ("teacher", "student")
MODEL_RECORD_FILE = "model.json"
#: The record's name before it was renamed: a run's own model_config.json holds a bare
#: ModelConfig, another schema. Saved models of earlier runs still carry it.
_OLD_MODEL_RECORD_FILE = "model_config.json"
WEIGHTS_PREFIX = "weights"
_FORMAT = "bifsmn_tf.model/1"


STUDENT_OPTIONS = (
    "binarizer",
    "weight_scale",
    "memory_input",
    "fe3_input_thresholds",
    "fc1_input_thresholds",
    "per_width_batch_norm",
    "student_dropout",
)
"""The :class:`ModelConfig` fields only the student reads: a student takes its teacher's
architecture and these (and its trained ``widths``) from its recipe."""


def blocks_for_width(width: int, num_blocks: int) -> tuple[int, ...]:
    """Indices of the blocks executed at ``width``: ``(n/w)(k+1) - 1``.

    docs/design.md#thinnable-depth-tba.

    For 8 blocks: 8 -> 0..7, 4 -> 1,3,5,7, 2 -> 3,7, 1 -> 7. The student's ``k``-th executed
    block is distilled from the teacher block of the same index (docs/design.md#hed).
    """
    if width < 1 or num_blocks % width:
        raise ValueError(f"width {width} must divide the number of blocks ({num_blocks})")
    step = num_blocks // width
    return tuple(step * (k + 1) - 1 for k in range(width))


@dataclasses.dataclass(frozen=True)
class ModelConfig(JsonConfig):
    """Architecture of the teacher and the student (defaults: the official code's, docs/design.md).

    ``widths`` are the student's selectable widths (numbers of executed blocks), widest first;
    each divides ``num_blocks``, the teacher's one width. ``binarizer`` is one of
    :data:`quantizers.BINARIZERS`; ``weight_scale`` one of :data:`quantizers.WEIGHT_SCALES`. The
    teacher ignores ``widths`` and the :data:`STUDENT_OPTIONS` (:meth:`for_teacher` resets
    those); the student ignores ``teacher_dropout``.

    ``memory_input`` is what the student's memory conv sees: ``"binary"``, the sign of the
    residual stream (the paper's and the official code's), or ``"float"``, the residual stream
    itself. LCE has no binary depthwise convolution, so after conversion the memory conv is a
    float ``DEPTHWISE_CONV_2D`` either way (on the dequantized +-1 input, or on the float one):
    the same kernel bytes and MACs, one ``LceQuantize``/``LceDequantize`` pair fewer per block.
    Its weights stay binary, and so do the 1x1 convolutions, fc1 and fe3 in both. What it is
    worth: BENCHMARKS.md, "Ablation: binarizers and distillation".

    ``fe3_input_thresholds`` and ``fc1_input_thresholds`` are where the student binarizes those
    layers' inputs: ``(0.0,)`` is the sign (paper, official code); ``K`` thresholds give each input
    channel ``K`` binary channels, a thermometer code of its value
    (:class:`~bifsmn_tf.models.layers.ThresholdCopies`). The layer stays an ``LceBconv2d`` with
    ``K`` times the input channels, so its packed binary weights grow with ``K`` -- except that LCE
    packs input channels 32 to a word, and fe3's 16 fill half a word: a second fe3 threshold
    costs no weight bytes; each extra fc1 threshold costs 4 KB. The binary front end is where
    the student loses most against the teacher (BENCHMARKS.md, "Thermometer-coded binary inputs
    to fe3 and fc1").

    ``per_width_batch_norm`` gives each width of the student its own memory and hidden BN in
    every block (the official code shares them, and only the output BN is per width). Block 7
    runs after block 6 at width 8 and after block 3 at width 2: shared BN statistics average
    inputs that differ, and fit no width (BENCHMARKS.md, "Batch norm per width"). A width's
    flatbuffer holds only its own, folded into its convolutions: the same bytes.
    """

    num_classes: int = 12
    num_frames: int = 32
    num_features: int = 32
    profile: str = "paper"
    binarizer: str = "bifsmn"
    weight_scale: str = "output_channel"
    memory_input: str = "binary"
    fe3_input_thresholds: tuple[float, ...] = (0.0,)
    fc1_input_thresholds: tuple[float, ...] = (0.0,)
    per_width_batch_norm: bool = False
    widths: tuple[int, ...] = (8, 4, 2, 1)
    frontend_channels: int = 16
    frontend_kernel_size: int = 5
    num_blocks: int = 8
    hidden_size: int = 256
    memory_size: int = 128
    left_order: int = 2
    right_order: int = 2
    dilation: int = 1
    teacher_dropout: float = 0.2
    student_dropout: float = 0.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        if non_finite_fields(self):
            raise ConfigError(f"ModelConfig: {', '.join(non_finite_fields(self))} must be finite numbers")
        if self.profile not in PROFILES:
            raise ConfigError(f"ModelConfig.profile: unknown {self.profile!r}; choose {PROFILES}")
        if self.binarizer not in quantizers.BINARIZERS:
            raise ConfigError(
                f"ModelConfig.binarizer: unknown {self.binarizer!r}; choose {tuple(quantizers.BINARIZERS)}"
            )
        if not isinstance(self.per_width_batch_norm, bool):
            raise ConfigError(f"ModelConfig.per_width_batch_norm: true or false, got {self.per_width_batch_norm!r}")
        if self.memory_input not in MEMORY_INPUTS:
            raise ConfigError(f"ModelConfig.memory_input: unknown {self.memory_input!r}; choose {MEMORY_INPUTS}")
        for name in ("fe3_input_thresholds", "fc1_input_thresholds"):
            thresholds = getattr(self, name)
            if not thresholds or list(thresholds) != sorted(set(thresholds)):
                raise ConfigError(f"ModelConfig.{name}: one or more distinct increasing values, got {thresholds}")
            if len(thresholds) == 1 and thresholds[0] != 0.0:
                # One threshold builds no copies, so anything but 0 would be silently ignored;
                # a shifted sign is what the BN and RPReLU before the layer learn anyway.
                raise ConfigError(f"ModelConfig.{name}: a single threshold must be 0, got {thresholds}")
        if self.weight_scale not in quantizers.WEIGHT_SCALES:
            raise ConfigError(
                f"ModelConfig.weight_scale: unknown {self.weight_scale!r}; choose {quantizers.WEIGHT_SCALES}"
            )
        positive = (
            "num_classes",
            "num_frames",
            "num_features",
            "frontend_channels",
            "frontend_kernel_size",
            "num_blocks",
            "hidden_size",
            "memory_size",
            "dilation",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"ModelConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.left_order < 0 or self.right_order < 0:
            raise ConfigError("ModelConfig.left_order/right_order: must be >= 0")
        if not self.widths or list(self.widths) != sorted(set(self.widths), reverse=True):
            raise ConfigError(f"ModelConfig.widths: distinct, widest first, got {self.widths}")
        for width in self.widths:
            if width < 1 or self.num_blocks % width:
                raise ConfigError(f"ModelConfig.widths: {width} does not divide num_blocks={self.num_blocks}")

    @property
    def backbone_frames(self) -> int:
        """Time steps after the two stride-2 front-end convolutions (8 for 32 frames)."""
        return math.ceil(math.ceil(self.num_frames / 2) / 2)

    @property
    def fc1_inputs(self) -> int:
        """Features per backbone time step: fe3's channels (2 x fe0's) times the frequency bins."""
        return 2 * self.frontend_channels * math.ceil(math.ceil(self.num_features / 2) / 2)

    def blocks(self, width: int | None) -> tuple[int, ...]:
        """Blocks executed at ``width``; ``None`` (the teacher) runs all."""
        if width is None:
            return tuple(range(self.num_blocks))
        return blocks_for_width(width, self.num_blocks)

    def for_teacher(self) -> ModelConfig:
        """This architecture as a teacher records it: the :data:`STUDENT_OPTIONS` at their
        defaults, so that a teacher run does not depend on the students it will teach."""
        defaults = ModelConfig()
        return self.replace(**{name: getattr(defaults, name) for name in STUDENT_OPTIONS})

    def same_architecture(self, other: ModelConfig) -> bool:
        """Whether the shared layers of ``self`` and ``other`` have the same shapes."""
        ignored = {*STUDENT_OPTIONS, "widths", "teacher_dropout"}
        return all(
            getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(self) if f.name not in ignored
        )


@dataclasses.dataclass(frozen=True)
class _ModelInfo:
    config: ModelConfig
    kind: str
    full: bool


def _tag(model: tf.keras.Model, config: ModelConfig, kind: str, full: bool) -> tf.keras.Model:
    model.bifsmn_info = _ModelInfo(config, kind, full)
    return model


def _info(model: tf.keras.Model) -> _ModelInfo:
    info = getattr(model, "bifsmn_info", None)
    if not isinstance(info, _ModelInfo):
        raise ValueError(f"model {model.name!r} was not built by bifsmn_tf.models.dfsmn")
    return info


def model_config(model: tf.keras.Model) -> ModelConfig:
    """The :class:`ModelConfig` a model (or a width/feature model cut from it) was built from."""
    return _info(model).config


def model_kind(model: tf.keras.Model) -> str:
    """``"teacher"`` or ``"student"``."""
    return _info(model).kind


def _layers(config: ModelConfig, kind: str) -> dict[str, tf.keras.layers.Layer]:
    """Every layer of a model, by name; the graphs of all widths are wired from these."""
    student = kind == "student"
    binarizer = config.binarizer
    act = ("rprelu" if quantizers.binarizer(binarizer).rprelu else "prelu") if student else "relu"
    layers: dict[str, tf.keras.layers.Layer] = {}

    def batch_norm(name: str) -> tf.keras.layers.BatchNormalization:
        return tf.keras.layers.BatchNormalization(momentum=config.bn_momentum, epsilon=config.bn_epsilon, name=name)

    def binary_conv(filters: int, kernel: int, strides: int, use_bias: bool, name: str):
        if not student:
            return lq.layers.QuantConv2D(filters, kernel, strides=strides, padding="same", use_bias=True, name=name)
        return lq.layers.QuantConv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            input_quantizer=quantizers.input_quantizer(binarizer),
            kernel_quantizer=quantizers.kernel_quantizer(binarizer, config.weight_scale),
            kernel_constraint="weight_clip",
            use_bias=use_bias,
            name=name,
        )

    layers["add_channel"] = tf.keras.layers.Reshape((config.num_frames, config.num_features, 1), name="add_channel")
    layers["fe0"] = lq.layers.QuantConv2D(
        config.frontend_channels, config.frontend_kernel_size, strides=2, padding="same", name="fe0"
    )
    layers["fe0_bn"] = batch_norm("fe0_bn")
    layers["fe0_act"] = activation_layer(act, "fe0_act")
    for name, thresholds in (("fe3", config.fe3_input_thresholds), ("fc1", config.fc1_input_thresholds)):
        if student and len(thresholds) > 1:
            layers[f"{name}_copies"] = ThresholdCopies(thresholds, name=f"{name}_copies")
    # A bias before BN is redundant; the teacher keeps it only to match the official count.
    layers["fe3"] = binary_conv(
        2 * config.frontend_channels, config.frontend_kernel_size, 2, use_bias=False, name="fe3"
    )
    layers["fe3_bn"] = batch_norm("fe3_bn")
    layers["fe3_act"] = activation_layer(act, "fe3_act")
    layers["to_sequence"] = tf.keras.layers.Reshape((config.backbone_frames, 1, config.fc1_inputs), name="to_sequence")
    layers["fc1"] = binary_conv(config.memory_size, 1, 1, use_bias=True, name="fc1")
    layers["fc1_act"] = activation_layer(act, "fc1_act")

    widths = config.widths if student else (None,)
    for index in range(config.num_blocks):
        branches = tuple(width or config.num_blocks for width in widths if index in config.blocks(width))
        if not branches:
            continue
        binary = {}
        if student:
            binary = dict(
                input_quantizer=quantizers.input_quantizer(binarizer),
                kernel_quantizer=quantizers.kernel_quantizer(binarizer, config.weight_scale),
                depthwise_quantizer=quantizers.kernel_quantizer(binarizer, config.weight_scale, depthwise=True),
                kernel_constraint="weight_clip",
                quantize_memory_input=config.memory_input == "binary",
            )
        layers[f"block_{index}"] = DFSMNBlock(
            hidden_size=config.hidden_size,
            left_order=config.left_order,
            right_order=config.right_order,
            dilation=config.dilation,
            use_bias=not student,
            activation="rprelu" if act == "rprelu" else "prelu",
            hidden_activation=act,
            dropout=config.student_dropout if student else config.teacher_dropout,
            branches=branches,
            per_width_batch_norm=config.per_width_batch_norm,
            bn_momentum=config.bn_momentum,
            bn_epsilon=config.bn_epsilon,
            name=f"block_{index}",
            **binary,
        )

    if config.profile == "paper":
        layers["head"] = tf.keras.layers.Flatten(name="flatten")
    else:
        layers["head"] = tf.keras.layers.GlobalAveragePooling2D(name="time_mean")
    dropout = config.student_dropout if student else config.teacher_dropout
    if dropout:
        layers["dropout"] = tf.keras.layers.Dropout(dropout, name="dropout")
    layers["classifier"] = tf.keras.layers.Dense(config.num_classes, name="classifier")
    return layers


# Keras runs every custom layer's ``call`` through AutoGraph while it wires a functional model;
# ours (and Larq's) have no tensor-dependent Python control flow, and that conversion was most of
# the time of building a model (the builders run in training, evaluation, conversion and most
# tests; BENCHMARKS.md, "Building models and tracing steps"). Inside these two functions AutoGraph
# is off.
@tf.autograph.experimental.do_not_convert
def _frontend(layers: Mapping[str, tf.keras.layers.Layer], features: tf.Tensor) -> tf.Tensor:
    x = layers["add_channel"](features)
    x = layers["fe0_act"](layers["fe0_bn"](layers["fe0"](x)))
    if "fe3_copies" in layers:
        x = layers["fe3_copies"](x)
    x = layers["fe3_act"](layers["fe3_bn"](layers["fe3"](x)))
    sequence = layers["to_sequence"](x)
    if "fc1_copies" in layers:
        sequence = layers["fc1_copies"](sequence)
    return layers["fc1_act"](layers["fc1"](sequence))


@tf.autograph.experimental.do_not_convert
def _backbone(
    layers: Mapping[str, tf.keras.layers.Layer],
    config: ModelConfig,
    sequence: tf.Tensor,
    width: int | None,
    skip_hidden_activation: bool = False,
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    block_outputs = []
    for index in config.blocks(width):
        sequence = layers[f"block_{index}"](sequence, width=width, skip_hidden_activation=skip_hidden_activation)
        block_outputs.append(sequence)
    x = layers["head"](sequence)
    if "dropout" in layers:
        x = layers["dropout"](x)
    return layers["classifier"](x), block_outputs


def _features_input(config: ModelConfig) -> tf.Tensor:
    return tf.keras.Input((config.num_frames, config.num_features), name="features")


def build_teacher(config: ModelConfig) -> tf.keras.Model:
    """The full-precision D-FSMN teacher (official ``DfsmnModel_pre``, dropout 0.2):
    ``(B, T, F)`` features -> ``(B, C)`` logits."""
    layers = _layers(config, "teacher")
    features = _features_input(config)
    logits, _ = _backbone(layers, config, _frontend(layers, features), None)
    return _tag(tf.keras.Model(features, logits, name="dfsmn_teacher"), config, "teacher", True)


def build_bifsmn(config: ModelConfig) -> tf.keras.Model:
    """The thinnable binary student: ``(B, T, F)`` features -> a list of logits ``(B, C)``, one
    per width of ``config.widths`` in that order. The front end runs once and is shared; every
    width reuses the same layers (per-width layers: the blocks' output BN/activation, and their
    memory and hidden BN with ``per_width_batch_norm``)."""
    layers = _layers(config, "student")
    features = _features_input(config)
    sequence = _frontend(layers, features)
    logits = [_backbone(layers, config, sequence, width)[0] for width in config.widths]
    return _tag(tf.keras.Model(features, logits, name="bifsmn"), config, "student", True)


def _check_width(model: tf.keras.Model, width: int | None) -> tuple[ModelConfig, str]:
    info = _info(model)
    if info.kind == "teacher" and width not in (None, info.config.num_blocks):
        raise ValueError(f"the teacher has one width ({info.config.num_blocks} blocks); got {width}")
    if info.kind == "student" and width not in info.config.widths:
        raise ValueError(f"width must be one of {info.config.widths}, got {width}")
    return info.config, info.kind


def _wire(
    model: tf.keras.Model, widths: Sequence[int | None], for_lce: bool = False
) -> tuple[tf.Tensor, list[tuple[tf.Tensor, list[tf.Tensor]]]]:
    """The features input and ``(logits, block outputs)`` of each width, one front end for all."""
    checked = [_check_width(model, width) for width in widths]
    config, kind = checked[0]
    layers = {layer.name: layer for layer in model.layers}
    layers["head"] = layers["flatten" if config.profile == "paper" else "time_mean"]
    features = _features_input(config)
    skip = for_lce and kind == "student" and config.binarizer in quantizers.SIGN_INPUT_BINARIZERS
    sequence = _frontend(layers, features)
    paths = [_backbone(layers, config, sequence, None if kind == "teacher" else width, skip) for width in widths]
    return features, paths


def width_model(model: tf.keras.Model, width: int | None = None, *, for_lce: bool = False) -> tf.keras.Model:
    """The model at one width, ``(B, T, F) -> (B, C)`` logits, sharing ``model``'s weights.

    For the student ``width`` is one of ``config.widths``; for the teacher ``None``. The student's
    width models are what LCE converts (one flatbuffer per width).

    ``for_lce=True`` gives the same logits through the graph LCE converts best: where a
    student block's hidden PReLU only feeds a plain sign quantizer it is left out
    (``DFSMNBlock.call(skip_hidden_activation=True)``), so that the expand convolution hands
    its output to the project convolution bitpacked, with per-channel thresholds in place of a
    float multiplier and bias, and one PReLU and one quantize op fewer per block.
    """
    features, [(logits, _)] = _wire(model, [width], for_lce)
    config, kind = model_config(model), model_kind(model)
    name = f"{model.name}_w{width}" if width else model.name
    return _tag(tf.keras.Model(features, logits, name=name), config, kind, False)


def feature_model(model: tf.keras.Model, width: int | None = None) -> tf.keras.Model:
    """``(B, T, F) -> [logits (B, C), block_out_0, ..., block_out_{n-1}]``, each block output
    ``(B, T'=8, 1, C=128)``, for the blocks executed at ``width`` in order (teacher: all). Shares
    ``model``'s weights, so gradients through it train ``model`` (distillation)."""
    return widths_feature_model(model, [width])


def widths_feature_model(model: tf.keras.Model, widths: Sequence[int | None]) -> tf.keras.Model:
    """:func:`feature_model` of several widths in one graph, the front end run once for all:
    ``(B, T, F) -> [logits_w, block_out_0_w, ...]`` of each width in order, concatenated.

    A training step of every width then computes the front end once instead of once per width
    (about a third of the student's work at widths 8/4/2). Outputs and gradients are those of
    the separate width models; the front end's BN moving statistics are updated once per call.
    """
    features, paths = _wire(model, widths)
    config, kind = model_config(model), model_kind(model)
    outputs = [tensor for logits, blocks in paths for tensor in (logits, *blocks)]
    suffix = "_".join(f"w{w}" for w in widths if w)
    name = f"{model.name}_features" + (f"_{suffix}" if suffix else "")
    return _tag(tf.keras.Model(features, outputs, name=name), config, kind, False)


def batch_norms_at(model: tf.keras.Model, width: int | None = None) -> list[tf.keras.layers.BatchNormalization]:
    """The BN layers ``width``'s forward pass runs, in order, each once: the front end's, then
    each executed block's memory, hidden and output BN (for the student, that width's own
    where the block has them)."""
    config, kind = _check_width(model, width)
    front = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    blocks = [model.get_layer(f"block_{index}") for index in config.blocks(None if kind == "teacher" else width)]
    return front + [bn for block in blocks for bn in block.batch_norms(None if kind == "teacher" else width)]


def weight_counts(model: tf.keras.Model, width: int | None = None) -> dict[str, int]:
    """Trainable parameters on the path of ``width``: ``{"binary": 1-bit weights, "float": the
    rest}`` (a weight is binary when its Larq quantizer has precision 1). Other widths' output
    branches are not counted: they are not part of that width's deployed model. BN moving
    statistics are not parameters (they fold into the BN scale and shift)."""
    config, kind = _check_width(model, width)
    branch = config.num_blocks if kind == "teacher" else width
    counts = {"binary": 0, "float": 0}
    for layer in width_model(model, width).layers:
        block = isinstance(layer, DFSMNBlock)
        for weight in layer.weights_at(branch) if block else layer.trainable_weights:
            precision = "binary" if getattr(weight, "precision", None) == 1 else "float"
            counts[precision] += int(weight.shape.num_elements())
    return counts


def _weights_by_path(model: tf.keras.Model) -> dict[str, tf.Variable]:
    """Weights keyed ``layer/sub_layer/weight``, the same for a teacher and a student layer that
    play the same role (variable names carry the layer name scopes)."""
    return {weight.name.split(":")[0]: weight for weight in model.weights}


def init_student_from_teacher(student: tf.keras.Model, teacher: tf.keras.Model) -> dict[str, list[str]]:
    """Copy a trained teacher's weights into the student where they play the same role.

    docs/design.md#thinnable-depth-tba.

    Carried: the front end (conv kernels, BN), fc1 (fe3's and fc1's kernels repeated for every
    threshold copy of their inputs, see ``ModelConfig.fe3_input_thresholds``), every block's
    memory / expand / project kernels, memory BN and PReLU (its one slope copied to every channel of ReActNet's RPReLU),
    hidden BN (into every width's, with ``per_width_batch_norm``), the teacher's output BN/PReLU
    into the full-width branch, and the classifier.
    Fresh: the other widths' output branches, the PReLU slopes that replace the teacher's ReLUs,
    and quantizer parameters. Dropped: the teacher's conv biases
    before BN, which the student does not have. Returns ``{"carried", "fresh", "dropped"}``, each
    a sorted list of weight paths.
    """
    student_config, teacher_config = model_config(student), model_config(teacher)
    if model_kind(student) != "student" or model_kind(teacher) != "teacher":
        raise ValueError("init_student_from_teacher(student, teacher): arguments swapped or wrong kind")
    if not student_config.same_architecture(teacher_config):
        raise ValueError(
            "teacher and student configs differ in architecture: "
            f"teacher {teacher_config.to_dict()} vs student {student_config.to_dict()}"
        )
    source = _weights_by_path(teacher)
    target = _weights_by_path(student)
    carried, fresh = [], []
    for path, weight in target.items():
        # A width's own memory/hidden BN starts from the teacher's one, as a shared one does.
        teacher_path = _PER_WIDTH_INNER_BN.sub(r"/\1/", path)
        if teacher_path not in source:
            fresh.append(path)
            continue
        value = source[teacher_path]
        if tuple(value.shape) != tuple(weight.shape):
            value = _adapted(path, value, weight.shape)
        weight.assign(value)
        carried.append(path)
    taken = {_PER_WIDTH_INNER_BN.sub(r"/\1/", path) for path in carried}
    dropped = [path for path in source if path not in taken]
    return {"carried": sorted(carried), "fresh": sorted(fresh), "dropped": sorted(dropped)}


_PER_WIDTH_INNER_BN = re.compile(r"/(memory_bn|hidden_bn)_w\d+/")


def _adapted(path: str, value: tf.Tensor, shape: tf.TensorShape) -> tf.Tensor:
    """A teacher weight fitted to the student's different ``shape`` where the roles match."""
    if path.endswith("/alpha") and value.shape.num_elements() == 1:
        # ReActNet's RPReLU has a slope per channel where the teacher's PReLU has one.
        return tf.fill(shape, tf.reshape(value, ()))
    copies = shape[-2] // value.shape[-2] if value.shape.rank == 4 == shape.rank else 0
    if path.endswith("/kernel") and copies > 1 and value.shape[-2] * copies == shape[-2]:
        # fe3/fc1 behind ThresholdCopies: every copy of an input channel starts with its weight.
        return tf.tile(value, [1, 1, copies, 1])
    raise ValueError(f"{path}: teacher shape {tuple(value.shape)} != student {tuple(shape)}")


def build_model(config: ModelConfig, kind: str) -> tf.keras.Model:
    """:func:`build_teacher` or :func:`build_bifsmn` by ``kind``."""
    if kind == "teacher":
        return build_teacher(config)
    if kind == "student":
        return build_bifsmn(config)
    raise ValueError(f"kind: unknown {kind!r}; choose one of {KINDS}")


def save_model(model: tf.keras.Model, directory: str | Path, config: ModelConfig) -> Path:
    """Write ``model``'s weights (TF checkpoint ``weights.*``) and ``model.json``
    (format, kind, config) to ``directory``, replacing it atomically: the files are written to a
    temporary directory beside it which is then renamed."""
    info = _info(model)
    if not info.full:
        raise ValueError("save_model: pass the model from build_teacher/build_bifsmn, not a cut-out")
    if config != info.config:
        raise ValueError("save_model: config differs from the one the model was built with")
    directory = Path(directory)
    with atomic_directory(directory) as staging:
        model.save_weights(str(staging / WEIGHTS_PREFIX), save_format="tf")
        record = {"format": _FORMAT, "kind": info.kind, "config": config.to_dict()}
        atomic_write_text(staging / MODEL_RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return directory


def read_model_record(directory: str | Path) -> tuple[str, ModelConfig]:
    """``(kind, config)`` from a saved model's ``model.json``, without building it."""
    path = Path(directory) / MODEL_RECORD_FILE
    if not path.exists() and (Path(directory) / _OLD_MODEL_RECORD_FILE).exists():
        path = Path(directory) / _OLD_MODEL_RECORD_FILE
    record = read_json(path, missing=f"not found; is {directory} a saved model directory?")
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ConfigError(f"{path}: not a bifsmn_tf model record (expected format {_FORMAT})")
    if record.get("kind") not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {KINDS}, got {record.get('kind')!r}")
    return record["kind"], ModelConfig.from_dict(record["config"])


def load_model(directory: str | Path) -> tuple[tf.keras.Model, ModelConfig]:
    """Rebuild a saved model from its recorded config (not the code's defaults) and load its
    weights; every weight of the rebuilt model must be found in the checkpoint."""
    kind, config = read_model_record(directory)
    model = build_model(config, kind)
    try:
        model.load_weights(str(Path(directory) / WEIGHTS_PREFIX)).assert_existing_objects_matched()
    except AssertionError as err:
        raise ConfigError(f"{directory}: weights do not match the recorded config ({err})") from None
    except (tf.errors.OpError, IndexError) as err:  # IndexError: TF's reader on a cut data file
        raise ConfigError(
            f"{directory}: the saved weights cannot be read ({_first_line(getattr(err, 'message', str(err)))}); the "
            "files are damaged or incomplete: copy the run again or retrain it"
        ) from None
    return model, config


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no message"
