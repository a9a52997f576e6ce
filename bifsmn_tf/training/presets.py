"""Named recipes: every option of a published run, for its teacher and for its student.

A :class:`Preset` is what ``bifsmn-tf train-teacher --preset NAME`` and ``bifsmn-tf train
--preset NAME`` start from, and what ``bifsmn-tf demo`` and the notebooks train with, so that the
two command lines give exactly the demo's runs. A command-line flag changes one option
(:meth:`Preset.with_options`); every other option is the preset's. The reasons for each choice
are given next to it; the runs that chose them are in BENCHMARKS.md, in the section named, and
in CHANGELOG.md, "How the demo's recipe was chosen".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bifsmn_tf.config import JsonConfig
from bifsmn_tf.data.pipeline import DataConfig
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.models.dfsmn import ModelConfig
from bifsmn_tf.training.trainer import TrainConfig, default_width_weights


@dataclasses.dataclass(frozen=True)
class Preset:
    """Every option of a published run but where its data lives.

    A teacher run of the preset (:func:`bifsmn_tf.training.run.teacher_configs`) takes ``data``,
    ``features``, the architecture of ``model`` (:meth:`ModelConfig.for_teacher`) and the
    optimisation of ``teacher`` (:meth:`TrainConfig.for_teacher`: full width, no distillation,
    whatever ``teacher`` says of those). A student (:func:`bifsmn_tf.training.run.student_configs`)
    inherits its teacher's data, features and architecture, and takes ``student`` and the
    :data:`~bifsmn_tf.models.dfsmn.STUDENT_OPTIONS` of ``model``; its model's widths are
    ``student.widths``.

    Attributes:
        teacher: The FP teacher's optimisation.
        student: The binary student's optimisation, widths and distillation.
        model: The architecture, and the student's binarization options.
        data: Task, unknown/silence composition and augmentation (``root`` and ``data_dir`` are
            set per run).
        features: The frontend the teacher, and so its students, are trained on.
    """

    teacher: TrainConfig
    student: TrainConfig
    model: ModelConfig
    data: DataConfig
    features: FeatureConfig

    def with_options(
        self,
        *,
        teacher: Mapping[str, Any] | None = None,
        student: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> Preset:
        """This recipe with some options changed.

        Each argument maps field names of that config to new values; a ``None`` value is left
        out (an unset command-line flag). A student's new ``widths`` bring their default weights
        (:func:`~bifsmn_tf.training.trainer.default_width_weights`) unless ``width_weights`` is
        given too.

        Raises:
            ConfigError: a value the config refuses.
            TypeError: a name that is not a field of that config.
        """
        student = _given(student)
        if "widths" in student and "width_weights" not in student:
            student["width_weights"] = default_width_weights(student["widths"], self.model.num_blocks)
        changes = {"teacher": teacher, "student": student, "model": model, "data": data, "features": features}
        return dataclasses.replace(
            self,
            **{name: _replaced(getattr(self, name), options) for name, options in changes.items()},
        )


def _given(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: value for name, value in (options or {}).items() if value is not None}


def _replaced(config: JsonConfig, options: Mapping[str, Any] | None) -> JsonConfig:
    given = _given(options)
    return config.replace(**given) if given else config


PRESETS: dict[str, Preset] = {
    # The official code's recipe (docs/design.md#training-recipe-of-the-paper; the configs'
    # defaults), the published network and the official evaluation protocol on Speech Commands
    # V1. The official code does not say how its teacher was trained; here it has the student's
    # recipe. Meant for a machine with a GPU and the real data.
    "paper": Preset(
        teacher=TrainConfig(),
        student=TrainConfig(),
        model=ModelConfig(),
        data=DataConfig(task="v1-12"),
        features=FeatureConfig(),
    ),
    # `bifsmn-tf demo`'s recipe, sized for its synthetic set on a 2-core CPU.
    "demo": Preset(
        # Adam rather than the paper's SGD: a binary network's latent weights need sign flips,
        # which SGD at a short budget's learning rates makes too rarely (the student stayed at
        # chance). No weight decay. (CHANGELOG.md, "How the demo's recipe was chosen".)
        teacher=TrainConfig(
            # The student follows its teacher's false rejects, and the teacher still gained in
            # the 30 epochs after 50 (BENCHMARKS.md, "A longer teacher"); it keeps its last
            # epoch with BN statistics recomputed, as the student does, for the same reason.
            epochs=80,
            batch_size=32,
            learning_rate=2e-3,
            optimizer="adam",
            weight_decay=0.0,
            calibrate_batch_norm=True,
        ),
        student=TrainConfig(
            # The student underfits (its augmented training accuracy stays below its validation
            # accuracy), so it gets more passes than the teacher, in larger batches at a higher
            # rate. With 100 it trailed the 80-epoch teacher by 6 points of false rejects; 150
            # brought it within 3 and met the false-accept target (BENCHMARKS.md, "A longer
            # teacher").
            epochs=150,
            batch_size=96,
            learning_rate=4e-3,
            optimizer="adam",
            weight_decay=0.0,
            # HED at 10x the paper's weight, and the teacher's soft labels mixed into each
            # width's cross-entropy: a binary student that underfits learns faster from the
            # teacher's full distribution (BENCHMARKS.md, "Ablation: binarizers and distillation").
            gamma=0.1,
            logit_distill=0.5,
            # The validation split is small: the widths' accuracies differ by less than its
            # noise, and a strict monotone rule would keep an early checkpoint.
            monotone_tolerance=0.02,
            # The moving BN averages of the last epoch still swung validation accuracy by 3
            # points at a learning rate near 0, and chose a best epoch of a high rate by that
            # noise: the last epoch's model with the mean statistics of an epoch, per width
            # (BENCHMARKS.md, "Batch norm per width").
            calibrate_batch_norm=True,
        ),
        model=ModelConfig(
            # The time-mean head is invariant to where the word sits in the second, which the
            # synthetic set varies, and learns from few speakers much sooner than the flatten
            # head (BENCHMARKS.md, "`paper` vs `lean` profile").
            profile="lean",
            # LCE runs the memory convs as float depthwise convs whatever they are fed (it has
            # no binary depthwise kernel), so feeding them the float residual stream costs
            # nothing on the device and keeps what the sign would lose.
            memory_input="float",
            # The binary front end is where the plain student loses most: fe3 and fc1 read their
            # inputs at three thresholds (a thermometer code) instead of at 0 alone, for a few
            # KB of flatbuffer (BENCHMARKS.md, "Thermometer-coded binary inputs to fe3 and fc1").
            fe3_input_thresholds=(-0.67, 0.0, 0.67),
            fc1_input_thresholds=(-0.67, 0.0, 0.67),
            # A block that runs at several widths reads different inputs at each; with one BN
            # for all, width 2 trailed full width by 3 points and missed twice as many keywords
            # (BENCHMARKS.md, "Batch norm per width").
            per_width_batch_norm=True,
        ),
        data=DataConfig(
            task="v1-12",
            # Validation and evaluation keep the `standard` composition (10 % unknown, 10 % noise
            # silence) for the accuracy columns; the detection figures score every non-keyword
            # clip.
            protocol="standard",
            # Each training epoch holds half as many non-keyword clips as keyword clips, drawn
            # afresh from all of them: at the protocol's 10 % the models took many other words
            # for keywords, at one per keyword clip the student fell outside the accuracy bound,
            # and all of them every epoch would cost far more clips (BENCHMARKS.md, "Keywords
            # against other words").
            train_unknown_share=0.5,
            # Half as many again one-second windows of non-keyword words said one after
            # another (fragments at the edges) join the non-keyword clips each epoch draws from:
            # a spotter listening to people talk hears such windows, never one word in silence
            # (BENCHMARKS.md, "Keywords against other words").
            train_run_on_share=0.5,
        ),
        # A 30 ms window every 20 ms with 40 mel bins instead of the official 128 ms every 32 ms
        # with 32: the keywords the models confused with each other or with other words (go,
        # up, off, on) differ in short consonants that a 128 ms window smears (BENCHMARKS.md,
        # "Keywords against other words").
        features=FeatureConfig(n_fft=512, win_length=480, hop_length=320, n_mels=40),
    ),
}
"""Every preset by the name ``--preset`` takes; the first, the paper's, is the default."""
