"""The training step of BiFSMN: every thin width per batch, distilled, one optimizer update.

:class:`Distiller` wraps a model (the BiFSMN student, or the FP teacher when it is itself being
trained) and overrides ``train_step``/``test_step`` so that ``fit``/``evaluate`` run the objective
of docs/design.md#the-objective-per-step:

    L = Σ_w λ_w · [ CE(z_w, y) + γ · D_w ]   (+ the L2 weight-decay term)

(with ``logit_distill`` α > 0, ``CE(z_w, y)`` becomes ``(1 − α)·CE(z_w, y) + α·CE(z_w, p_T)``,
``p_T`` the teacher's softmax), with ``D_w`` the HED loss of the executed student blocks against
the enhanced teacher blocks ``j(k)`` (or FID, or nothing), and one SGD step on the sum. Because
the step is a plain Keras ``train_step``, ``tf.distribute.MirroredStrategy`` runs it on every
replica and all-reduces the gradients: build the models, the ``Distiller`` and ``compile`` inside
``strategy.scope()``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from bifsmn_tf.config import ConfigError, JsonConfig, non_finite_fields
from bifsmn_tf.models.dfsmn import feature_model, model_config, model_kind, widths_feature_model
from bifsmn_tf.training.distill import DISTILL_MODES, fid_loss, hed_loss, hed_target

OPTIMIZERS = ("sgd", "adam")


def default_width_weights(widths: Sequence[int], num_blocks: int) -> tuple[float, ...]:
    """λ_w = w / num_blocks: the official (1, 0.5, 0.25) for widths (8, 4, 2) of 8 blocks,
    extended to any set."""
    return tuple(width / num_blocks for width in widths)


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Optimisation settings of one training run (teacher or student).

    The defaults are the paper's recipe (docs/design.md#training-recipe-of-the-paper), preset
    ``"paper"`` (:data:`bifsmn_tf.training.presets.PRESETS`): SGD with momentum 0.9, learning
    rate 5e-3 on a cosine schedule stepped once per epoch down to 0 after 300 epochs (torch's
    ``CosineAnnealingLR(T_max=300)``), batch 96, weight decay 1e-4 on every trainable variable,
    widths 8/4/2 weighted 1/0.5/0.25, HED at γ = 0.01. It is meant for a machine with a GPU and
    the real data (docs/training.md#the-papers-setting-on-real-speech-commands).

    Weight decay is L2 regularisation coupled to the gradient, as torch's ``SGD(weight_decay=)``
    of the official code: ``wd/2 · Σ‖v‖²`` is added to the loss, so the decay goes through the
    momentum. (Keras' own ``weight_decay`` argument is decoupled, which for SGD with momentum
    0.9 decays about 10x less.)

    ``optimizer="adam"`` replaces SGD by Adam (β = 0.9/0.999) on the same cosine schedule; the
    ``demo`` preset uses it because the latent weights of a binary network need sign flips, which
    SGD at a short budget's learning rates makes too rarely (see :mod:`bifsmn_tf.training.presets`).

    Attributes:
        epochs: Passes over the training split.
        batch_size: Global batch size (split across replicas under a distribution strategy).
        learning_rate: Peak learning rate of the cosine schedule.
        momentum: SGD momentum (ignored by Adam).
        optimizer: ``"sgd"`` (the paper's) or ``"adam"``.
        weight_decay: L2 coefficient on every trainable variable (BN and PReLU included).
        widths: Depths trained and evaluated, widest first; each divides the model's
            ``num_blocks`` (the teacher: ``(num_blocks,)``, see :meth:`for_teacher`).
        width_weights: λ per width, same order.
        distill: ``"hed"`` (v1), ``"fid"`` (v2) or ``"none"`` (cross-entropy only).
        gamma: Weight of the distillation term.
        logit_distill: Weight α of the teacher's soft labels ``p_T = softmax(z_T)`` in each
            width's classification term, ``(1 − α)·CE(z, y) + α·CE(z, p_T)``: Hinton's logit
            distillation at temperature 1. The paper's v1 has none (0, the default); a binary
            student that underfits learns faster from the teacher's full distribution.
        seed: Seed of initialisation, data order, augmentation and dropout.
        calibrate_batch_norm: After the last epoch, the run's model is the last epoch's (not
            the best on validation), its BN moving statistics replaced by the mean batch
            statistics of one more epoch of the training stream, width by width
            (:mod:`bifsmn_tf.training.calibration`). Off in the paper's recipe.
        monotone_tolerance: How far a thinner width's validation accuracy may exceed the next
            wider one's for a checkpoint to still count as monotone in the best-model rule
            (docs/design.md#thinnable-depth-tba; the official code: 0, strictly decreasing). On
            a small validation split the widths' accuracies differ by less than their noise,
            and a zero tolerance keeps an early checkpoint (CHANGELOG.md, "How the demo's
            recipe was chosen").
    """

    epochs: int = 300
    batch_size: int = 96
    learning_rate: float = 5e-3
    momentum: float = 0.9
    optimizer: str = "sgd"
    weight_decay: float = 1e-4
    widths: tuple[int, ...] = (8, 4, 2)
    width_weights: tuple[float, ...] = (1.0, 0.5, 0.25)
    distill: str = "hed"
    gamma: float = 0.01
    logit_distill: float = 0.0
    seed: int = 0
    monotone_tolerance: float = 0.0
    calibrate_batch_norm: bool = False

    def __post_init__(self) -> None:
        problems = [f"{name} must be a finite number" for name in non_finite_fields(self)]
        if self.epochs < 1 or self.batch_size < 1:
            problems.append(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.widths or list(self.widths) != sorted(set(self.widths), reverse=True):
            problems.append(f"widths must be distinct and widest first, got {self.widths}")
        if any(width < 1 for width in self.widths):
            problems.append(f"widths must be >= 1, got {self.widths}")
        if len(self.width_weights) != len(self.widths):
            problems.append(f"one width weight per width: {self.widths} vs {self.width_weights}")
        if self.distill not in DISTILL_MODES:
            problems.append(f"distill must be one of {DISTILL_MODES}, got {self.distill!r}")
        if self.gamma < 0:
            problems.append(f"gamma must be >= 0, got {self.gamma}")
        if not 0.0 <= self.logit_distill <= 1.0:
            problems.append(f"logit_distill must be in [0, 1], got {self.logit_distill}")
        if not 0.0 <= self.monotone_tolerance < 1.0:
            problems.append(f"monotone_tolerance must be in [0, 1), got {self.monotone_tolerance}")
        if not isinstance(self.calibrate_batch_norm, bool):
            problems.append(f"calibrate_batch_norm must be true or false, got {self.calibrate_batch_norm!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if problems:
            raise ConfigError("TrainConfig: " + "; ".join(problems))

    def for_teacher(self, num_blocks: int) -> TrainConfig:
        """The same recipe for the FP teacher of ``num_blocks`` blocks: full width only, no
        distillation."""
        return self.replace(widths=(num_blocks,), width_weights=(1.0,), distill="none", logit_distill=0.0)


def cosine_learning_rate(epoch: int, config: TrainConfig) -> float:
    """The learning rate of ``epoch`` (0-based): cosine annealing to 0, stepped per epoch."""
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))


def build_optimizer(config: TrainConfig) -> tf.keras.optimizers.Optimizer:
    """SGD with momentum, or Adam; the rate is set each epoch by :func:`cosine_learning_rate`."""
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=cosine_learning_rate(0, config))
    return tf.keras.optimizers.SGD(learning_rate=cosine_learning_rate(0, config), momentum=config.momentum)


class Distiller(tf.keras.Model):
    """Trains ``student`` at several depths at once, distilled from a frozen ``teacher``.

    Each train step runs every width in ``widths`` (widest first) on the batch, in one graph
    whose front end runs once for all widths (:func:`~bifsmn_tf.models.dfsmn.widths_feature_model`),
    adds ``λ_w · (CE + γ · distillation)`` over widths plus the L2 term, and applies ONE
    optimizer update. The teacher runs in inference mode (``training=False``: BN moving
    statistics, no dropout), once per batch, outside the gradient tape.

    Metrics, per width ``w``: ``ce_w`` and ``acc_w`` (train and test), ``distill_w`` (train,
    when distilling); ``loss`` is the λ-weighted objective without the L2 term; ``examples``
    counts training clips (for throughput).

    Args:
        student: A model of :mod:`bifsmn_tf.models.dfsmn` (``build_bifsmn`` or, to train the
            teacher itself, ``build_teacher`` with ``widths=(num_blocks,)``). Inputs ``(B, T, F)``.
        teacher: The trained FP teacher, frozen; may be ``None`` (and is ignored) for
            ``distill="none"`` without ``logit_distill``.
        widths: as in :class:`TrainConfig`.
        width_weights: as in :class:`TrainConfig`.
        distill: as in :class:`TrainConfig`.
        gamma: as in :class:`TrainConfig`.
        logit_distill: as in :class:`TrainConfig`.
        weight_decay: as in :class:`TrainConfig`.
    """

    def __init__(
        self,
        student: tf.keras.Model,
        teacher: tf.keras.Model | None = None,
        *,
        widths: Sequence[int] = (8, 4, 2),
        width_weights: Sequence[float] = (1.0, 0.5, 0.25),
        distill: str = "hed",
        gamma: float = 0.01,
        logit_distill: float = 0.0,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if distill not in DISTILL_MODES:
            raise ValueError(f"distill must be one of {DISTILL_MODES}, got {distill!r}")
        self._uses_teacher = distill != "none" or bool(logit_distill)
        if self._uses_teacher and teacher is None:
            raise ValueError(f"distill={distill!r}, logit_distill={logit_distill} needs a teacher")
        if len(widths) != len(width_weights):
            raise ValueError(f"one weight per width: {tuple(widths)} vs {tuple(width_weights)}")
        self.student = student
        # A teacher the objective does not use is not run, frozen or tracked.
        self.teacher = teacher if self._uses_teacher else None
        self.widths = tuple(int(w) for w in widths)
        self.width_weights = tuple(float(w) for w in width_weights)
        self.distill = distill
        self.gamma = float(gamma)
        self.logit_distill = float(logit_distill)
        self.weight_decay = float(weight_decay)
        # Every width in one graph: the front end runs once per step, not once per width.
        self._forward = widths_feature_model(student, self.widths)
        config, kind = model_config(student), model_kind(student)
        self._output_counts = [1 + len(config.blocks(None if kind == "teacher" else w)) for w in self.widths]
        if distill != "none":
            # The k-th block a width executes learns from the teacher block of the same index.
            self._teacher_blocks = {w: list(config.blocks(w)) for w in self.widths}
        if self._uses_teacher:
            teacher.trainable = False
            self._teacher_features = feature_model(teacher)
        self._ce = {w: tf.keras.metrics.Mean(name=f"ce_{w}") for w in self.widths}
        self._acc = {w: tf.keras.metrics.SparseCategoricalAccuracy(name=f"acc_{w}") for w in self.widths}
        self._distill = (
            {} if distill == "none" else {w: tf.keras.metrics.Mean(name=f"distill_{w}") for w in self.widths}
        )
        self._loss = tf.keras.metrics.Mean(name="loss")
        self._examples = tf.keras.metrics.Sum(name="examples")

    @classmethod
    def for_recipe(cls, student: tf.keras.Model, teacher: tf.keras.Model | None, config: TrainConfig) -> Distiller:
        """The distiller of ``config``'s widths, weights, distillation and weight decay."""
        return cls(
            student,
            teacher,
            widths=config.widths,
            width_weights=config.width_weights,
            distill=config.distill,
            gamma=config.gamma,
            logit_distill=config.logit_distill,
            weight_decay=config.weight_decay,
        )

    @property
    def metrics(self) -> list[tf.keras.metrics.Metric]:
        return [
            self._loss,
            *self._ce.values(),
            *self._acc.values(),
            *self._distill.values(),
            self._examples,
        ]

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Logits of every width: ``{"8": (B, classes), "4": ..., ...}``."""
        return {str(w): outputs[0] for w, outputs in self._width_outputs(inputs, training).items()}

    def _width_outputs(self, inputs: tf.Tensor, training: bool) -> dict[int, list[tf.Tensor]]:
        """``{width: [logits, block outputs...]}`` of one pass of every width."""
        flat = list(self._forward(inputs, training=training))
        outputs, start = {}, 0
        for width, count in zip(self.widths, self._output_counts, strict=True):
            outputs[width], start = flat[start : start + count], start + count
        return outputs

    def _teacher_outputs(self, inputs: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        outputs = self._teacher_features(inputs, training=False)
        logits, blocks = outputs[0], list(outputs[1:])
        return tf.stop_gradient(logits), [tf.stop_gradient(b) for b in blocks]

    # Plain Python control flow only, so AutoGraph need not rewrite the step or the layers it
    # calls; without it the step traces to the same graph several times sooner (BENCHMARKS.md,
    # "Building models and tracing steps").
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        inputs, labels = data
        if self._uses_teacher:
            teacher_logits, teacher_blocks = self._teacher_outputs(inputs)
            if self.logit_distill:
                soft_labels = tf.nn.softmax(teacher_logits)
        if self.distill != "none":
            needed = sorted({j for js in self._teacher_blocks.values() for j in js})
            targets = (
                {j: hed_target(teacher_blocks[j]) for j in needed}
                if self.distill == "hed"
                else {j: teacher_blocks[j] for j in needed}
            )
        trainable = self.student.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            objective = 0.0
            per_width = {}
            width_outputs = self._width_outputs(inputs, training=True)
            for width, weight in zip(self.widths, self.width_weights, strict=True):
                outputs = width_outputs[width]
                logits = outputs[0]
                ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
                width_loss = ce
                if self.logit_distill:
                    soft_ce = tf.reduce_mean(
                        tf.keras.losses.categorical_crossentropy(soft_labels, logits, from_logits=True)
                    )
                    width_loss = (1.0 - self.logit_distill) * ce + self.logit_distill * soft_ce
                distill_loss = None
                if self.distill != "none":
                    student_blocks = list(outputs[1:])
                    teacher_blocks_w = [targets[j] for j in self._teacher_blocks[width]]
                    if self.distill == "hed":
                        distill_loss = hed_loss(student_blocks, teacher_blocks_w)
                    else:
                        distill_loss = fid_loss(student_blocks, teacher_blocks_w, logits, teacher_logits)
                    width_loss += self.gamma * distill_loss
                objective += weight * width_loss
                per_width[width] = (ce, distill_loss, logits)
            l2 = 0.5 * self.weight_decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in trainable])
            # The optimizer sums gradients over replicas; each replica's loss is its share.
            scaled = (objective + l2) / replicas
        gradients = tape.gradient(scaled, trainable)
        self.optimizer.apply_gradients((g, v) for g, v in zip(gradients, trainable, strict=True) if g is not None)
        self._loss.update_state(objective)
        for width, (ce, distill_loss, logits) in per_width.items():
            self._ce[width].update_state(ce)
            self._acc[width].update_state(labels, logits)
            if distill_loss is not None:
                self._distill[width].update_state(distill_loss)
        self._examples.update_state(tf.cast(tf.shape(labels)[0], tf.float32))
        return self._results(train=True)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        inputs, labels = data
        objective = 0.0
        width_outputs = self._width_outputs(inputs, training=False)
        for width, weight in zip(self.widths, self.width_weights, strict=True):
            logits = width_outputs[width][0]
            ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            objective += weight * ce
            self._ce[width].update_state(ce)
            self._acc[width].update_state(labels, logits)
        self._loss.update_state(objective)
        return self._results(train=False)

    def _results(self, *, train: bool) -> dict[str, tf.Tensor]:
        metrics = [self._loss, *self._ce.values(), *self._acc.values()]
        if train:
            metrics += [*self._distill.values(), self._examples]
        return {m.name: m.result() for m in metrics}
