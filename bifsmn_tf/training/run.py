"""A training run on disk: configs, fit loop, checkpoints, resume, best-model selection.

A run directory holds everything needed to inspect, resume or reuse it::

    RUN_DIR/
      run.json               kind (teacher|student), teacher run, progress, best epoch
                             (``records.RunRecord``; the teacher run relative to this folder)
      train_config.json  model_config.json  data_config.json  feature_config.json
      checkpoints/           last epoch: weights + optimizer state + epoch (tf.train.Checkpoint)
      best/epoch-NNNN/       the best model so far (``models.dfsmn.save_model``) + selection.json
      model -> best/epoch-NNNN   symlink, swapped atomically: what evaluation/conversion load
      metrics.csv            one row per epoch: lr, time, samples/s, train and val metrics
      logs/                  TensorBoard event files
      training_curves.png    accuracy and cross-entropy per width, train and validation (redrawn
                             at most every ``monitor.CURVES_SECONDS``, and after the last epoch)

:mod:`bifsmn_tf.training.monitor` writes ``metrics.csv``, the curves and the progress bars.

Nothing is lost on a crash: at the end of each epoch the best model (if it improved) and the
metrics are written atomically, then the checkpoint is committed (its index is replaced
atomically by ``tf.train.CheckpointManager``). Running the same command again resumes after the
last committed epoch with its optimizer state, learning-rate schedule and data stream
(``make_dataset(first_epoch=...)``); a run whose settings differ is refused rather than mixed.

Best model selection (docs/design.md#thinnable-depth-tba): after each epoch, on the validation
split, a model is a candidate if its accuracies do not increase as the width shrinks (acc_8 >=
acc_4 >= acc_2), and it replaces the best when its full-width accuracy is higher. The official
code requires strictly decreasing accuracies; with ties that rule rejects e.g. a model perfect at
every width, so ties are allowed here. If no epoch is monotone, the best full-width accuracy wins until one is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import tensorflow as tf

from bifsmn_tf.data.labels import task_labels
from bifsmn_tf.data.pipeline import DataConfig, make_dataset
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.fileio import atomic_symlink, atomic_write_text
from bifsmn_tf.models.dfsmn import (
    STUDENT_OPTIONS,
    ModelConfig,
    build_bifsmn,
    build_model,
    build_teacher,
    init_student_from_teacher,
    load_model,
    save_model,
    width_model,
)
from bifsmn_tf.models.quantizers import set_training_progress
from bifsmn_tf.records import RUN_RECORD, NewerSchemaError, RecordError, RunFailure, RunRecord
from bifsmn_tf.training.calibration import recompute_batch_norm_statistics
from bifsmn_tf.training.monitor import CURVES, METRICS, MetricsLog, ProgressBars
from bifsmn_tf.training.presets import Preset
from bifsmn_tf.training.trainer import Distiller, TrainConfig, build_optimizer, cosine_learning_rate

RUN_INFO = RUN_RECORD
TRAIN_CONFIG = "train_config.json"
MODEL_CONFIG = "model_config.json"
DATA_CONFIG = "data_config.json"
FEATURE_CONFIG = "feature_config.json"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
BEST = "best"
MODEL = "model"
SELECTION = "selection.json"


class RunError(ValueError):
    """A run directory cannot be used as asked (different settings, missing files)."""


@dataclasses.dataclass(frozen=True)
class RunConfigs:
    """The four configs that define a run; saved as JSON in the run directory."""

    train: TrainConfig
    model: ModelConfig
    data: DataConfig
    features: FeatureConfig

    _FILES = {"train": TRAIN_CONFIG, "model": MODEL_CONFIG, "data": DATA_CONFIG, "features": FEATURE_CONFIG}

    def save(self, run_dir: Path) -> None:
        for name, file in self._FILES.items():
            getattr(self, name).save(run_dir / file)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunConfigs:
        run_dir = Path(run_dir)
        types = {"train": TrainConfig, "model": ModelConfig, "data": DataConfig, "features": FeatureConfig}
        return cls(**{name: types[name].load(run_dir / file) for name, file in cls._FILES.items()})


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a finished :func:`train` call reports."""

    run_dir: Path
    kind: str
    epochs: int
    first_epoch: int
    best_epoch: int
    best_val_accuracy: dict[str, float]
    train_seconds: float


def teacher_configs(data_root: str | Path, preset: Preset, *, data_dir: str | None = None) -> RunConfigs:
    """Configs of an FP teacher run of ``preset`` on the dataset at ``data_root`` (Speech
    Commands layout); ``data_dir`` is where decoded-audio caches go (default ``$BIFSMN_DATA`` or
    the user cache). Its students inherit its data and features (:class:`Preset` says what a
    teacher takes of a preset)."""
    features = preset.features
    return RunConfigs(
        train=preset.teacher.for_teacher(preset.model.num_blocks),
        model=preset.model.for_teacher().replace(
            num_classes=len(task_labels(preset.data.task)),
            num_frames=features.num_frames,
            num_features=features.num_features,
        ),
        data=preset.data.replace(root=str(Path(data_root).expanduser().resolve()), data_dir=data_dir),
        features=features,
    )


def student_configs(teacher_run: str | Path, preset: Preset, *, data_root: str | Path | None = None) -> RunConfigs:
    """Configs of a BiFSMN student of ``preset`` distilled from ``teacher_run``: the teacher's
    task, data, features and architecture, with the preset's student options
    (:class:`Preset`). ``data_root`` replaces where the teacher's dataset lives."""
    check_teacher_run(teacher_run)
    teacher = RunConfigs.load(teacher_run)
    train = preset.student
    data = teacher.data
    if data_root is not None:
        data = data.replace(root=str(Path(data_root).expanduser().resolve()))
    return RunConfigs(
        train=train,
        model=teacher.model.replace(
            **{name: getattr(preset.model, name) for name in STUDENT_OPTIONS}, widths=train.widths
        ),
        data=data,
        features=teacher.features,
    )


def read_run_info(run_dir: str | Path) -> RunRecord:
    """``run.json`` of ``run_dir``; a missing, damaged or foreign record is a :class:`RunError`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file" if run_dir.exists() else "does not exist"
        raise RunError(f"{run_dir} {what}; give a training run directory (the --out of train-teacher or train)")
    path = run_dir / RUN_INFO
    if not path.exists():
        raise RunError(f"{run_dir}: not a training run directory (no {RUN_INFO})")
    try:
        return RunRecord.load(path)
    except NewerSchemaError as err:
        raise RunError(str(err)) from None
    except RecordError as err:
        raise RunError(f"{err} (an interrupted copy?); copy the run again") from None


def check_teacher_run(teacher_run: str | Path) -> RunRecord:
    """The run record of ``teacher_run`` if it is a finished teacher run a student can learn from."""
    record = read_run_info(teacher_run)
    if record.kind != "teacher":
        raise RunError(f"{teacher_run} is a {record.kind} run; --teacher takes a run of `bifsmn-tf train-teacher`")
    if record.failed:
        raise RunError(f"{teacher_run}: this teacher run failed ({record.failed.reason}); train another teacher")
    if not record.complete:
        raise RunError(
            f"{teacher_run}: the teacher has finished {record.epochs_done} of {record.epochs} epochs; "
            "finish it first (rerun its train-teacher command: it resumes)"
        )
    if not (Path(teacher_run) / MODEL).is_dir():
        raise RunError(f"{teacher_run}: {MODEL}/ is missing; the run folder is incomplete: copy it again")
    return record


def load_run_model(run_dir: str | Path) -> tuple[tf.keras.Model, ModelConfig]:
    """The best model of a run (``RUN_DIR/model``) and its config."""
    path = Path(run_dir) / MODEL
    if not path.exists():
        raise RunError(f"{run_dir}: no {MODEL}/ yet; the run has not finished an epoch")
    return load_model(path)


def default_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    return tf.distribute.get_strategy()


def train(
    run_dir: str | Path,
    configs: RunConfigs,
    *,
    teacher_run: str | Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
    progress: bool = True,
) -> RunResult:
    """Train (or resume) the run in ``run_dir``: the teacher, or a student distilled from one.

    Args:
        run_dir: created if absent; if it holds a run, that run is resumed, and it must have
            been started with the same configs (the data location may differ).
        configs: train/model/data/feature configs. The data config's ``batch_size`` and
            ``seed`` are taken from the train config.
        teacher_run: a finished teacher run directory; given, a BiFSMN student is built,
            initialised from the teacher (docs/design.md#thinnable-depth-tba) and distilled from
            it; absent, the FP teacher is trained (``configs.train`` must then be
            ``TrainConfig.for_teacher(num_blocks)``: full width only, no distillation).
        strategy: a ``tf.distribute`` strategy; default :func:`default_strategy`.
        progress: tqdm bars per epoch for training and validation.
    """
    run_dir = Path(run_dir)
    kind = "teacher" if teacher_run is None else "student"
    configs = dataclasses.replace(
        configs,
        data=configs.data.replace(batch_size=configs.train.batch_size, seed=configs.train.seed),
    )
    full_width = (configs.model.num_blocks,)
    if kind == "teacher" and (configs.train.widths != full_width or configs.train.distill != "none"):
        raise RunError(
            f"a teacher run trains width {full_width[0]} only without distillation; use TrainConfig.for_teacher()"
        )
    if teacher_run is not None:
        check_teacher_run(teacher_run)
    record = _prepare_run_dir(run_dir, configs, kind, teacher_run)
    strategy = strategy or default_strategy()
    train_config = configs.train

    checkpoint_dir = run_dir / CHECKPOINTS
    first_epoch = _committed_epoch(run_dir)
    if first_epoch >= train_config.epochs:
        print(f"{run_dir}: all {train_config.epochs} epochs are done; nothing to train")
        started = time.monotonic()
        _calibrate_last_model(run_dir, configs, progress)
        return _result(run_dir, kind, train_config.epochs, first_epoch, time.monotonic() - started)
    tf.keras.utils.set_random_seed(train_config.seed + first_epoch)

    train_data = make_dataset(configs.data, configs.features, "train", training=True, first_epoch=first_epoch)
    val_data = make_dataset(configs.data, configs.features, "validation")

    with strategy.scope():
        teacher = None
        if kind == "teacher":
            model = build_teacher(configs.model)
        else:
            teacher, _ = load_run_model(teacher_run)
            model = build_bifsmn(configs.model)
            if first_epoch == 0:
                init_student_from_teacher(model, teacher)
        distiller = Distiller.for_recipe(model, teacher, train_config)
        optimizer = build_optimizer(train_config)
        distiller.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
        if first_epoch > 0:
            try:
                checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            except (tf.errors.OpError, AssertionError) as err:
                raise _damaged_checkpoint(run_dir, err) from None
            print(
                f"{run_dir}: resuming after epoch {int(epoch.numpy())} of {train_config.epochs} "
                f"(optimizer step {int(optimizer.iterations.numpy())})"
            )

    recorder = _RunRecorder(run_dir, configs, model, manager, epoch, first_epoch, record)
    callbacks = [
        tf.keras.callbacks.TerminateOnNaN(),
        tf.keras.callbacks.LearningRateScheduler(lambda e, _: cosine_learning_rate(e, train_config)),
        # IR-Net's EDE sharpens its backward pass as training advances; a resumed run picks the
        # schedule up at its epoch because this runs at every epoch's start.
        tf.keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, _: set_training_progress(model, e / train_config.epochs)
        ),
        recorder,
        tf.keras.callbacks.TensorBoard(run_dir / LOGS, write_graph=False, profile_batch=0),
    ]
    if progress:
        callbacks.insert(0, ProgressBars(train_config.epochs, len(train_data), len(val_data)))
    started = time.monotonic()
    distiller.fit(
        # One iterator for the whole run: Keras would make a new one every epoch, and each new
        # one cost a pause of seconds with both cores idle, and an empty prefetch buffer. Each
        # repetition of the dataset is the next epoch (make_dataset), so the batches are the same.
        train_data.repeat(),
        steps_per_epoch=len(train_data),
        validation_data=val_data,
        initial_epoch=first_epoch,
        epochs=train_config.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    _calibrate_last_model(run_dir, configs, progress)
    return _result(run_dir, kind, train_config.epochs, first_epoch, time.monotonic() - started)


def _calibrate_last_model(run_dir: Path, configs: RunConfigs, progress: bool) -> None:
    """With ``calibrate_batch_norm``: the finished run's model becomes its last epoch's, with the
    BN statistics recomputed on the epoch of the training stream after the last.

    Not the best epoch's: the best is chosen on validation accuracy through the moving BN
    averages, whose noise is what the recomputation removes, and it picked an epoch of a high
    learning rate (BENCHMARKS.md, "Batch norm per width"); the cosine schedule ends at rate 0.
    Done once: ``selection.json`` records it, written with the model; a run stopped before
    that does it again on resume, with the same result.
    """
    train_config = configs.train
    if not train_config.calibrate_batch_norm:
        return
    if "batch_norm_statistics" in json.loads((run_dir / MODEL / SELECTION).read_text()):
        return
    record = read_run_info(run_dir)
    model = build_model(configs.model, record.kind)
    checkpoint = tf.train.Checkpoint(model=model)
    checkpoint.restore(tf.train.latest_checkpoint(run_dir / CHECKPOINTS)).expect_partial()
    batches = make_dataset(configs.data, configs.features, "train", training=True, first_epoch=train_config.epochs)
    widths = train_config.widths
    count = recompute_batch_norm_statistics(model, batches, widths, total=len(batches), progress=progress)
    last = train_config.epochs - 1
    selection = selection_record(
        last, _validation_accuracy(model, configs, widths), train_config.monotone_tolerance
    ) | {"batch_norm_statistics": {"batches_per_width": count, "training_stream_epoch": train_config.epochs}}
    # The record first: the model with its mark is the last thing written, so that a run
    # stopped in between is redone whole on resume.
    record.replace(best_epoch=last).save(run_dir / RUN_INFO)
    _save_as_model(run_dir, model, configs.model, selection)
    print(f"{run_dir}: the last epoch's model, its BN statistics recomputed over {count} training batches per width")


def _validation_accuracy(model: tf.keras.Model, configs: RunConfigs, widths: tuple[int, ...]) -> dict[str, float]:
    correct, total = dict.fromkeys(widths, 0), 0
    models = {width: width_model(model, width) for width in widths}
    for features, labels in make_dataset(configs.data, configs.features, "validation"):
        for width, width_net in models.items():
            predicted = tf.argmax(width_net(features, training=False), axis=-1, output_type=labels.dtype)
            correct[width] += int(tf.reduce_sum(tf.cast(predicted == labels, tf.int32)))
        total += int(labels.shape[0])
    return {str(width): correct[width] / total for width in widths}


def _save_as_model(run_dir: Path, model: tf.keras.Model, config: ModelConfig, selection: dict[str, Any]) -> None:
    """Save ``model`` as the run's ``model/`` (``best/epoch-NNNN``), and drop the one before."""
    name = f"epoch-{selection['epoch']:04d}"
    target = run_dir / BEST / name
    if target.exists():  # left by a crash before it became the model, or replaced by its recalibration
        shutil.rmtree(target)
    save_model(model, target, config)
    atomic_write_text(target / SELECTION, json.dumps(selection, indent=2) + "\n")
    atomic_symlink(run_dir / MODEL, Path(BEST) / name)
    for stale in (run_dir / BEST).iterdir():
        if stale.name != name:
            shutil.rmtree(stale)


def _result(run_dir: Path, kind: str, epochs: int, first_epoch: int, seconds: float) -> RunResult:
    selection = json.loads((run_dir / MODEL / SELECTION).read_text())
    return RunResult(
        run_dir=run_dir,
        kind=kind,
        epochs=epochs,
        first_epoch=first_epoch,
        best_epoch=selection["epoch"],
        best_val_accuracy=selection["val_accuracy"],
        train_seconds=seconds,
    )


def _prepare_run_dir(run_dir: Path, configs: RunConfigs, kind: str, teacher_run: str | Path | None) -> RunRecord:
    """Create the run directory, or check that the one there is this run; return its record.

    A run that never committed an epoch is started over whatever its settings were: nothing of
    it is worth keeping, and refusing it would make a typo in the first command stick.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file; --out must be a directory for the run")
    if (run_dir / RUN_INFO).exists():
        record = read_run_info(run_dir)
        if record.failed:
            raise RunError(
                f"{run_dir}: this run failed in epoch {record.failed.epoch + 1} ({record.failed.reason}); "
                "train into a new directory, or delete this one to start over"
            )
        if _committed_epoch(run_dir) == 0:
            for name in (RUN_INFO, *RunConfigs._FILES.values(), METRICS, CURVES, LOGS, CHECKPOINTS, BEST, MODEL):
                path = run_dir / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        else:
            return _check_same_run(run_dir, configs, kind, record)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not a training run directory; choose another")
    run_dir.mkdir(parents=True, exist_ok=True)
    configs.save(run_dir)
    record = RunRecord(
        kind=kind,
        teacher_run=None if teacher_run is None else Path(teacher_run).resolve(),
        epochs=configs.train.epochs,
        epochs_done=0,
        complete=False,
    )
    record.save(run_dir / RUN_INFO)
    return record


def _check_same_run(run_dir: Path, configs: RunConfigs, kind: str, record: RunRecord) -> RunRecord:
    stored = RunConfigs.load(run_dir)
    differences = _config_differences(stored, configs)
    if record.kind != kind:
        differences.insert(0, f"kind: {record.kind} -> {kind}")
    if differences:
        raise RunError(
            f"{run_dir} holds a run with other settings ({'; '.join(differences)}); "
            "choose another output directory, or delete that one to start over"
        )
    configs.save(run_dir)  # records the current data location
    return record


def _config_differences(stored: RunConfigs, requested: RunConfigs) -> list[str]:
    """Field-level differences, ignoring where the data lives (a moved dataset may resume)."""
    location = {"data_dir", "root"}
    differences = []
    for name in ("train", "model", "data", "features"):
        old, new = getattr(stored, name).to_dict(), getattr(requested, name).to_dict()
        for key in sorted(set(old) | set(new)):
            if name == "data" and key in location:
                continue
            if old.get(key) != new.get(key):
                differences.append(f"{name}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return differences


def _committed_epoch(run_dir: Path) -> int:
    """Epochs done according to the run's last committed checkpoint (0 without one)."""
    latest = tf.train.latest_checkpoint(str(run_dir / CHECKPOINTS))
    if latest is None:
        return 0
    try:
        return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError) as err:
        raise _damaged_checkpoint(run_dir, err) from None


def _damaged_checkpoint(run_dir: Path, err: Exception) -> RunError:
    message = getattr(err, "message", str(err)).strip().splitlines() or ["no message"]
    return RunError(
        f"{run_dir / CHECKPOINTS}: the last checkpoint cannot be read ({message[0]}); to resume "
        f"from the one before, remove the newest ckpt-* files and the {CHECKPOINTS}/checkpoint "
        "index, or train into a new directory"
    )


class _RunRecorder(tf.keras.callbacks.Callback):
    """End of each epoch: best model, metrics.csv and curves (:class:`MetricsLog`), then the
    checkpoint commit."""

    def __init__(
        self,
        run_dir: Path,
        configs: RunConfigs,
        model: tf.keras.Model,
        manager: tf.train.CheckpointManager,
        epoch: tf.Variable,
        first_epoch: int,
        record: RunRecord,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.configs = configs
        self.student = model
        self.manager = manager
        self.epoch = epoch
        self.record = record
        self.widths = configs.train.widths
        self.metrics = MetricsLog(run_dir, self.widths, first_epoch)
        selection = run_dir / MODEL / SELECTION
        self.best = json.loads(selection.read_text()) if selection.exists() else None
        self._epoch_start = self._train_seconds = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.monotonic()
        self._train_seconds = 0.0

    def on_test_begin(self, logs=None) -> None:
        if not self._train_seconds:
            self._train_seconds = time.monotonic() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        problem = _non_finite(logs, self.student)
        if problem:
            self.record = self.record.replace(complete=False, failed=RunFailure(epoch, problem))
            self.record.save(self.run_dir / RUN_INFO)
            raise RunError(
                f"{self.run_dir}: training diverged in epoch {epoch + 1} ({problem}); the run is "
                f"recorded as failed (its best model is from before). Lower the learning rate "
                "(--lr) and train into a new directory"
            )
        candidate = selection_record(
            epoch,
            {str(w): logs[f"val_acc_{w}"] for w in self.widths},
            self.configs.train.monotone_tolerance,
        )
        if is_better(candidate, self.best):
            self._save_best(candidate)
        self.metrics.add(epoch, logs, self._train_seconds, last=epoch + 1 >= self.configs.train.epochs)
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        self.record = self.record.replace(
            epochs_done=epoch + 1, complete=epoch + 1 >= self.configs.train.epochs, best_epoch=self.best["epoch"]
        )
        self.record.save(self.run_dir / RUN_INFO)

    def _save_best(self, selection: dict[str, Any]) -> None:
        _save_as_model(self.run_dir, self.student, self.configs.model, selection)
        self.best = selection


def _non_finite(logs: dict[str, float], model: tf.keras.Model) -> str | None:
    """What went non-finite in an epoch (its losses, or the weights), or ``None``."""
    losses = {k: v for k, v in logs.items() if k == "loss" or k.startswith(("val_ce_", "ce_", "val_loss"))}
    if "loss" not in losses:
        return "no loss was recorded"
    bad = [f"{k} {v}" for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        return ", ".join(bad)
    floats = [w for w in model.weights if w.dtype.is_floating]
    weights = [w for w in floats if not bool(tf.reduce_all(tf.math.is_finite(w)))]
    if weights:
        return f"{len(weights)} of {len(floats)} weight tensors are not finite"
    return None


def selection_record(epoch: int, val_accuracy: dict[str, float], tolerance: float = 0.0) -> dict[str, Any]:
    """What is recorded of a model: epoch, validation accuracy per width (widest first) and
    whether the accuracy does not rise as the width shrinks (docs/design.md#thinnable-depth-tba;
    ties allowed) by more than ``tolerance`` (``TrainConfig.monotone_tolerance``)."""
    accuracies = list(val_accuracy.values())
    return {
        "epoch": epoch,
        "val_accuracy": dict(val_accuracy),
        "monotone": all(a >= b - tolerance for a, b in zip(accuracies, accuracies[1:])),
    }


def is_better(candidate: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """The selection rule: monotone beats non-monotone, then higher full-width accuracy wins."""
    if best is None:
        return True
    if candidate["monotone"] != best["monotone"]:
        return candidate["monotone"]
    full_width = next(iter(candidate["val_accuracy"]))
    return candidate["val_accuracy"][full_width] > best["val_accuracy"][full_width]
