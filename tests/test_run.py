"""Training runs on disk: files, best-model selection, refusal of mixed runs, kill and resume."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf.cli import main
from bifsmn_tf.data.pipeline import make_dataset
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.models import quantizers
from bifsmn_tf.models.dfsmn import build_bifsmn, build_teacher, model_kind
from bifsmn_tf.training import run
from bifsmn_tf.training.presets import PRESETS, Preset
from bifsmn_tf.training.trainer import cosine_learning_rate

#: Narrow layers (fast graph tracing) with the real depth, widths and block shapes.
SMALL_MODEL = {"frontend_channels": 4, "hidden_size": 32, "memory_size": 16}


def small(configs: run.RunConfigs) -> run.RunConfigs:
    return dataclasses.replace(configs, model=configs.model.replace(**SMALL_MODEL))


def teacher_configs(data: Path, cache: Path, **train) -> run.RunConfigs:
    preset = PRESETS["demo"].with_options(teacher={"batch_size": 8, "learning_rate": 0.005, **train})
    return small(run.teacher_configs(data, preset, data_dir=str(cache)))


def demo_student(**options) -> Preset:
    """The demo preset with ``options`` of the student's TrainConfig replaced."""
    return PRESETS["demo"].with_options(student={"learning_rate": 0.005, **options})


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / run.METRICS, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def teacher_run(synth_dataset, cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "teacher"
    run.train(run_dir, teacher_configs(synth_dataset, cache, epochs=2), progress=False)
    return run_dir


def test_teacher_run_directory_holds_everything(teacher_run):
    for name in (
        run.RUN_INFO,
        run.TRAIN_CONFIG,
        run.MODEL_CONFIG,
        run.DATA_CONFIG,
        run.FEATURE_CONFIG,
        run.METRICS,
        run.CURVES,
    ):
        assert (teacher_run / name).is_file(), name
    assert (teacher_run / run.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((teacher_run / run.LOGS).rglob("events.out.tfevents.*"))
    rows = read_metrics(teacher_run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"learning_rate", "samples_per_second", "acc_8", "ce_8", "val_acc_8", "val_ce_8"} <= set(rows[0])
    assert float(rows[1]["samples_per_second"]) > 0
    record = run.read_run_info(teacher_run)
    assert (record.kind, record.teacher_run, record.complete, record.epochs_done) == ("teacher", None, True, 2)
    assert (teacher_run / run.MODEL).is_symlink()
    model, config = run.load_run_model(teacher_run)
    assert model_kind(model) == "teacher" and config.memory_size == SMALL_MODEL["memory_size"]
    # The demo's teacher keeps its last epoch, its BN statistics recomputed.
    selection = json.loads((teacher_run / run.MODEL / run.SELECTION).read_text())
    assert selection["epoch"] == record.best_epoch == 1 and "batch_norm_statistics" in selection


def test_finished_run_is_not_trained_again(teacher_run, synth_dataset, cache, capsys):
    before = (teacher_run / run.METRICS).read_text()
    result = run.train(teacher_run, teacher_configs(synth_dataset, cache, epochs=2), progress=False)
    assert "nothing to train" in capsys.readouterr().out
    assert result.epochs == 2 and (teacher_run / run.METRICS).read_text() == before


def test_a_run_with_other_settings_is_refused(teacher_run, synth_dataset, cache):
    with pytest.raises(run.RunError, match=r"train\.epochs: 2 -> 3"):
        run.train(teacher_run, teacher_configs(synth_dataset, cache, epochs=3), progress=False)


def test_train_unknown_share_is_recorded_with_the_run(tmp_path, synth_dataset, cache):
    assert run.teacher_configs(synth_dataset, PRESETS["paper"]).data.train_unknown_share is None
    preset = PRESETS["paper"].with_options(data={"train_unknown_share": 0.5})
    configs = run.teacher_configs(synth_dataset, preset, data_dir=str(cache))
    configs.save(tmp_path)
    assert run.RunConfigs.load(tmp_path).data.train_unknown_share == 0.5


def test_a_directory_that_is_not_a_run_is_refused(tmp_path, synth_dataset, cache):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(run.RunError, match="not a training run directory"):
        run.train(tmp_path, teacher_configs(synth_dataset, cache, epochs=1), progress=False)


def test_student_run_distils_every_width_and_saves_a_student(teacher_run, tmp_path):
    configs = run.student_configs(teacher_run, demo_student(widths=(8, 4), distill="hed", epochs=1))
    assert configs.train.width_weights == (1.0, 0.5) and configs.model.widths == (8, 4)
    result = run.train(tmp_path / "student", configs, teacher_run=teacher_run, progress=False)
    assert result.kind == "student" and set(result.best_val_accuracy) == {"8", "4"}
    row = read_metrics(tmp_path / "student")[0]
    for width in (8, 4):
        assert math.isfinite(float(row[f"distill_{width}"])) and f"val_acc_{width}" in row
    model, config = run.load_run_model(tmp_path / "student")
    assert model_kind(model) == "student" and config.widths == (8, 4)
    record = run.read_run_info(tmp_path / "student")
    assert record.kind == "student" and record.teacher_run == teacher_run.resolve()


def _train_argv(teacher_run, out, *options: str) -> list[str]:
    """``train`` of one epoch at full width without distillation, with ``options``, then the
    epoch and progress flags last (a test replaces them)."""
    head = ["train", "--teacher", str(teacher_run), "--out", str(out), "--preset", "paper", "--widths", "8"]
    return [*head, "--distill", "none", *options, "--epochs", "1", "--no-progress"]


def test_a_run_without_recomputed_statistics_keeps_its_best_epoch_on_validation(synth_dataset, cache, tmp_path):
    configs = teacher_configs(synth_dataset, cache, epochs=2, calibrate_batch_norm=False)
    run.train(tmp_path / "teacher", configs, progress=False)
    rows = read_metrics(tmp_path / "teacher")
    selection = json.loads((tmp_path / "teacher" / run.MODEL / run.SELECTION).read_text())
    best = max(float(r["val_acc_8"]) for r in rows)
    assert selection["val_accuracy"]["8"] == pytest.approx(best, abs=1e-6)
    assert "batch_norm_statistics" not in selection


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_a_finished_run_is_its_last_epoch_with_bn_statistics_recomputed_once(
    kind, teacher_run, synth_dataset, cache, tmp_path, capsys
):
    if kind == "teacher":
        configs = teacher_configs(synth_dataset, cache, epochs=2)
        build, teacher = build_teacher, None
    else:
        configs = run.student_configs(teacher_run, demo_student(epochs=2))
        assert configs.model.per_width_batch_norm
        build, teacher = build_bifsmn, teacher_run
    assert configs.train.calibrate_batch_norm  # the demo's recipe, teacher and student alike
    run_dir = tmp_path / kind
    run.train(run_dir, configs, teacher_run=teacher, progress=False)
    assert "recomputed over" in capsys.readouterr().out
    selection = json.loads((run_dir / run.MODEL / run.SELECTION).read_text())
    stream = make_dataset(configs.data.replace(batch_size=configs.train.batch_size), configs.features, "train", True)
    assert selection["batch_norm_statistics"] == {"batches_per_width": len(stream), "training_stream_epoch": 2}
    assert selection["epoch"] == run.read_run_info(run_dir).best_epoch == 1
    assert [p.name for p in (run_dir / run.BEST).iterdir()] == ["epoch-0001"]
    assert os.readlink(run_dir / run.MODEL) == os.path.join(run.BEST, "epoch-0001")

    # Against the last epoch's checkpoint: the same weights, other BN statistics.
    calibrated, _ = run.load_run_model(run_dir)
    trained = build(configs.model)
    tf.train.Checkpoint(model=trained).restore(tf.train.latest_checkpoint(run_dir / run.CHECKPOINTS)).expect_partial()
    statistics = [v.name for v in calibrated.non_trainable_weights if "moving_" in v.name]
    assert statistics
    for mine, theirs in zip(calibrated.weights, trained.weights, strict=True):
        same = bool(np.array_equal(mine.numpy(), theirs.numpy()))
        assert same == (mine.name not in statistics), mine.name

    # Done once: a rerun leaves the saved model as it is.
    saved = {p.name: p.read_bytes() for p in (run_dir / run.MODEL).iterdir()}
    run.train(run_dir, configs, teacher_run=teacher, progress=False)
    assert "recomputed" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (run_dir / run.MODEL).iterdir()} == saved


@pytest.mark.slow  # options the demo sets; 1 min
def test_cli_train_records_memory_input_and_logit_distillation(teacher_run, tmp_path, capsys):
    out = tmp_path / "cli-student"
    argv = _train_argv(teacher_run, out, "--memory-input", "float", "--logit-distill", "0.3")
    assert main(argv) == 0, capsys.readouterr().err
    configs = run.RunConfigs.load(out)
    assert configs.train.logit_distill == 0.3 and configs.train.distill == "none"
    assert configs.model.memory_input == "float"
    model, config = run.load_run_model(out)
    assert config.memory_input == "float"
    block = model.get_layer("block_0")
    assert block.memory.input_quantizer is None and block.expand.input_quantizer is not None


@pytest.mark.slow  # an option off by default; 1 min
def test_cli_train_records_input_thresholds_and_refuses_bad_ones(teacher_run, tmp_path, capsys):
    out = tmp_path / "thresholds"
    argv = _train_argv(teacher_run, out, "--fe3-input-thresholds", "-0.5", "0.5")
    assert main(argv) == 0, capsys.readouterr().err
    model, config = run.load_run_model(out)
    assert config.fe3_input_thresholds == (-0.5, 0.5) and config.fc1_input_thresholds == (0.0,)
    assert model.get_layer("fe3_copies").thresholds == (-0.5, 0.5)
    assert "fc1_copies" not in [layer.name for layer in model.layers]
    # Without the fe3 thresholds and the trailing epoch and progress flags.
    bad = [*argv[:-6], "--epochs", "1", "--no-progress", "--out", str(tmp_path / "bad")]
    assert main([*bad, "--fc1-input-thresholds", "0.5", "-0.5"]) == 2
    assert "distinct increasing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*bad, "--fc1-input-thresholds", "a", "b"])
    assert "'a' is not a number" in capsys.readouterr().err


@pytest.mark.slow  # a baseline, not BiFSMN; 1 min
def test_irnet_run_advances_the_ede_schedule_each_epoch(teacher_run, tmp_path):
    preset = demo_student(widths=(8,), distill="none", epochs=2).with_options(model={"binarizer": "irnet"})
    configs = run.student_configs(teacher_run, preset)
    run.train(tmp_path / "irnet", configs, teacher_run=teacher_run, progress=False)
    model, _ = run.load_run_model(tmp_path / "irnet")
    schedules = {float(q.progress.numpy()) for q in model.submodules if isinstance(q, quantizers.EDESign)}
    # The saved model is the best epoch's: epoch 0 (progress 0) or epoch 1 (progress 1/2).
    best_epoch = json.loads((tmp_path / "irnet" / run.MODEL / run.SELECTION).read_text())["epoch"]
    assert schedules == {best_epoch / 2}


def test_a_student_takes_its_teachers_architecture_and_data_whatever_the_preset(teacher_run):
    teacher = run.RunConfigs.load(teacher_run)
    student = run.student_configs(teacher_run, PRESETS["paper"])
    assert PRESETS["paper"].model.profile != teacher.model.profile
    assert student.model.same_architecture(teacher.model)
    assert (student.data, student.features) == (teacher.data, teacher.features)
    assert student.model.widths == student.train.widths == PRESETS["paper"].student.widths


@pytest.mark.parametrize(
    "history, expected",
    [
        ([{"8": 0.5, "4": 0.4, "2": 0.3}], 0),
        ([{"8": 0.5, "4": 0.4, "2": 0.3}, {"8": 0.6, "4": 0.5, "2": 0.5}], 1),  # ties allowed
        ([{"8": 0.5, "4": 0.4, "2": 0.3}, {"8": 0.9, "4": 0.95, "2": 0.3}], 0),  # not monotone
        ([{"8": 0.5, "4": 0.6, "2": 0.3}, {"8": 0.4, "4": 0.3, "2": 0.2}], 1),  # monotone wins
        ([{"8": 0.5, "4": 0.6, "2": 0.3}, {"8": 0.7, "4": 0.8, "2": 0.1}], 1),  # best of none monotone
        ([{"8": 0.5, "4": 0.4, "2": 0.3}, {"8": 0.5, "4": 0.4, "2": 0.3}], 0),  # equal: keep first
    ],
)
def test_best_model_rule(history, expected):
    best = None
    for epoch, accuracy in enumerate(history):
        candidate = run.selection_record(epoch, accuracy)
        if run.is_better(candidate, best):
            best = candidate
    assert best["epoch"] == expected


@pytest.mark.parametrize(
    "tolerance, monotone",
    [(0.0, False), (0.019, False), (0.021, True)],
)
def test_monotone_tolerance_lets_a_thinner_width_lead_by_noise(tolerance, monotone):
    # The demo run's epoch 38: width 2 ahead of width 4 by 2 points of a 480-clip split.
    record = run.selection_record(37, {"8": 0.816, "4": 0.80, "2": 0.82}, tolerance)
    assert record["monotone"] is monotone


TRAIN_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys
    import bifsmn_tf
    from bifsmn_tf.training import run
    data, cache, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from bifsmn_tf.training.presets import PRESETS
    preset = PRESETS["demo"].with_options(teacher={"epochs": epochs, "batch_size": 8, "learning_rate": 0.005})
    configs = run.teacher_configs(data, preset, data_dir=cache)
    configs = dataclasses.replace(configs, model=configs.model.replace(**json.loads(sys.argv[5])))
    result = run.train(out, configs, progress=False)
    print(json.dumps({"first_epoch": result.first_epoch, "best_epoch": result.best_epoch}))
    """
)


def _optimizer_iterations(run_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(run_dir / run.CHECKPOINTS))
    return int(tf.train.load_variable(latest, "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))


def test_killed_run_resumes_with_its_epoch_count_and_optimizer_state(synth_dataset, cache, tmp_path):
    """SIGKILL a real training process after its second epoch, rerun it, and check that the
    epochs continue where the last checkpoint left them with the optimizer's step count."""
    epochs = 10
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(script),
        str(synth_dataset),
        str(cache),
        str(out),
        str(epochs),
        json.dumps(SMALL_MODEL),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads((out / run.RUN_INFO).read_text())["epochs_done"] >= 2:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    committed = run._committed_epoch(out)
    assert 2 <= committed < epochs
    assert not json.loads((out / run.RUN_INFO).read_text())["complete"]
    rows_before = [r for r in read_metrics(out) if int(r["epoch"]) < committed]
    steps_per_epoch = _optimizer_iterations(out) // committed
    assert _optimizer_iterations(out) == committed * steps_per_epoch > 0

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming after epoch {committed} of {epochs}" in resumed.stdout
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["first_epoch"] == committed
    rows = read_metrics(out)
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert rows[:committed] == rows_before
    schedule = run.RunConfigs.load(out).train
    for row in rows:
        assert float(row["learning_rate"]) == pytest.approx(cosine_learning_rate(int(row["epoch"]), schedule), rel=1e-5)
    assert _optimizer_iterations(out) == epochs * steps_per_epoch
    assert json.loads((out / run.RUN_INFO).read_text())["complete"]


def test_cli_verbs_explain_their_flags(capsys):
    for verb, flags in {
        "train-teacher": ["--data", "--task", "--out", "--preset", "--epochs", "--lr", "--weight-decay"],
        "train": [
            "--teacher",
            "--widths",
            "--distill",
            "--binarizer",
            "--gamma",
            "--memory-input",
            "--logit-distill",
            "--fe3-input-thresholds",
        ],
        "evaluate": ["--data", "--split", "--protocol", "--json"],
        "demo": ["--out", "--data", "--seed", "--jobs", "--hop-ms"],
    }.items():
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for flag in flags:
            assert flag in text, (verb, flag)


@pytest.mark.slow  # the refusal test below keeps the flags' parsing in the default run; 40 s
def test_cli_teacher_frontend_flags_shape_the_model_and_pass_to_its_students(
    synth_dataset, cache, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("BIFSMN_DATA", str(cache))
    out = tmp_path / "teacher"
    argv = [
        "train-teacher",
        "--data",
        str(synth_dataset),
        "--out",
        str(out),
        "--preset",
        "demo",
        "--profile",
        "lean",
        "--n-fft",
        "512",
        "--win-ms",
        "30",
        "--hop-ms",
        "20",
        "--n-mels",
        "40",
        "--per-bin-mean-removal",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--no-progress",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    expected = FeatureConfig(n_fft=512, win_length=480, hop_length=320, n_mels=40, per_bin_mean_removal=True)
    assert run.RunConfigs.load(out).features == expected
    assert run.student_configs(out, PRESETS["demo"]).features == expected
    model, model_config = run.load_run_model(out)
    assert (model_config.num_frames, model_config.num_features) == (51, 40)
    assert model.input_shape == (None, 51, 40)


def test_cli_frontend_flags_leave_the_official_frontend_and_refuse_a_bad_one(tmp_path, capsys):
    official = FeatureConfig()
    with pytest.raises(SystemExit):
        main(["train-teacher", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{official.n_fft}-point FFT, {official.n_mels} log-mel bins, 128 ms window, 32 ms hop (32 frames)" in text
    argv = ["train-teacher", "--data", str(tmp_path), "--out", str(tmp_path / "t"), "--n-fft", "500"]
    assert main(argv) == 2
    assert "n_fft must be a power of two" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    assert main(["train", "--teacher", str(tmp_path / "absent"), "--out", str(tmp_path / "s")]) == 2
    assert "absent does not exist; give a training run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--teacher", str(tmp_path), "--out", str(tmp_path / "s"), "--widths", "8", "x"])
    assert "argument --widths: invalid int value: 'x'" in capsys.readouterr().err
