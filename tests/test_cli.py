"""The command line's conventions, its defaults, and its presets: the demo's runs, flag for flag."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf import bench, demo, evaluate
from bifsmn_tf.cli import build_parser, main, training
from bifsmn_tf.cli.common import defaults_of
from bifsmn_tf.convert import ConvertConfig
from bifsmn_tf.data.synthetic import SynthConfig
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.models.quantizers import BINARIZERS
from bifsmn_tf.stream import StreamConfig
from bifsmn_tf.training import run
from bifsmn_tf.training.presets import PRESETS


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([str(a) for a in argv])


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every leaf verb's parser, its flags added, by command (``data synth``, ``train``, ...)."""
    found = {}

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    sub.format_help()  # adds the verb's flags
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        walk(sub, (*prefix, name))
                    else:
                        found[" ".join((*prefix, name))] = sub

    walk(build_parser(), ())
    return found


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def test_the_top_level_help_imports_no_tensorflow():
    code = (
        "import sys\nfrom bifsmn_tf.cli import build_parser\nbuild_parser().format_help()\n"
        "print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]


def test_every_flag_explains_itself_and_times_are_milliseconds_named_in_the_flag():
    verbs = verb_parsers()
    assert set(verbs) == {
        "data download",
        "data synth",
        "train-teacher",
        "train",
        "evaluate",
        "demo",
        "convert",
        "bench",
        "listen",
    }
    for verb, parser in verbs.items():
        for action in options(parser):
            flag = action.option_strings[-1]
            assert action.help and len(action.help) > 8, (verb, flag)
            assert "length" not in flag and "comma-separated" not in action.help, (verb, flag)
            if flag.endswith("-ms"):
                assert "millisecond" in action.help, (verb, flag)
            if "millisecond" in action.help:
                assert flag.endswith("-ms"), (verb, flag)


def test_a_dataset_root_is_data_and_an_output_is_out_in_every_verb():
    for verb, parser in verb_parsers().items():
        flags = {flag for action in options(parser) for flag in action.option_strings}
        assert not flags & {"--data-dir", "--dataset", "--root"}, verb
        positionals = [a.metavar for a in parser._actions if not a.option_strings]
        assert not {"OUT_DIR", "DATA_DIR", "DIR"} & set(positionals), (verb, positionals)
    assert "--data" in {f for a in options(verb_parsers()["demo"]) for f in a.option_strings}


def test_lists_are_space_separated_and_take_negative_numbers(tmp_path):
    args = parse(
        "train",
        "--teacher",
        tmp_path,
        "--out",
        tmp_path / "s",
        "--widths",
        "8",
        "4",
        "--fe3-input-thresholds",
        "-0.67",
        "0",
        "0.67",
        "--fc1-input-thresholds",
        "-1.5",
        "--gamma",
        "0.5",
    )
    assert (args.widths, args.fe3_input_thresholds, args.fc1_input_thresholds) == ([8, 4], [-0.67, 0.0, 0.67], [-1.5])
    assert args.gamma == 0.5
    args = parse("data", "synth", "--out", tmp_path / "set", "--engines", "espeak", "pico")
    assert args.engines == ["espeak", "pico"]


def test_defaults_are_the_configs_own():
    listen = parse("listen", "models", "--wav", "x.wav")
    stream_defaults = StreamConfig()
    assert (listen.hop_ms, listen.threshold, listen.smoothing_ms, listen.refractory_ms) == (
        stream_defaults.hop_ms,
        stream_defaults.threshold,
        stream_defaults.smoothing_ms,
        stream_defaults.refractory_ms,
    )
    converting = parse("convert", "run")
    assert (converting.input, converting.calibration_clips, converting.verify_clips) == (
        ConvertConfig().input,
        ConvertConfig().calibration_clips,
        ConvertConfig().verify_clips,
    )
    synth = parse("data", "synth", "--out", "set")
    assert (synth.words, synth.clips_per_word, synth.seed) == (
        SynthConfig().words,
        SynthConfig().clips_per_word,
        SynthConfig().seed,
    )
    evaluating, function = parse("evaluate", "run"), defaults_of(evaluate.evaluate_run)
    assert (evaluating.split, evaluating.batch_size, evaluating.far_target) == (
        function["split"],
        function["batch_size"],
        function["far_target"],
    )
    timing, function = parse("bench", "a.tflite"), defaults_of(bench.bench_host)
    assert (timing.threads, timing.runs, timing.warmup_runs) == (
        function["threads"],
        function["runs"],
        function["warmup_runs"],
    )
    assert parse("demo").out == defaults_of(demo.run_demo)["out_dir"]
    # What a training flag leaves unset is the preset's, whichever preset is chosen.
    teacher = parse("train-teacher", "--data", "d", "--out", "o")
    assert teacher.preset == "paper" and all(
        getattr(teacher, name) is None
        for name in ("epochs", "learning_rate", "task", "profile", "hop_ms", "per_bin_mean_removal")
    )


def test_the_binarizer_choices_are_the_registry(tmp_path, capsys):
    [binarizer] = [a for a in options(verb_parsers()["train"]) if a.dest == "binarizer"]
    assert binarizer.choices == list(BINARIZERS)
    with pytest.raises(SystemExit):
        parse("train", "--teacher", tmp_path, "--out", tmp_path / "s", "--binarizer", "dorefa")
    assert "invalid choice: 'dorefa'" in capsys.readouterr().err


def test_the_help_shows_what_each_preset_sets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    paper, demo_preset = PRESETS["paper"].student, PRESETS["demo"].student
    assert f"(default: the preset's: paper {paper.epochs}, demo {demo_preset.epochs})" in text
    assert "demo -0.67 0 0.67" in text


def test_frontend_times_become_whole_samples(tmp_path, capsys):
    args = parse(
        "train-teacher",
        "--data",
        tmp_path,
        "--out",
        tmp_path / "t",
        "--n-fft",
        "512",
        "--win-ms",
        "30",
        "--hop-ms",
        "20",
    )
    assert training.teacher_configs(args).features == FeatureConfig(n_fft=512, win_length=480, hop_length=320)
    assert main(["train-teacher", "--data", str(tmp_path), "--out", str(tmp_path / "t"), "--hop-ms", "20.01"]) == 2
    assert "20.01 ms is 320.16 samples at 16000 Hz; give a whole number of samples" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_the_demos_preset_is_the_one_of_train_teacher_and_train_preset_demo(synth_dataset, tmp_path):
    """The configs `train-teacher --preset demo` and `train --preset demo` build are the demo's,
    option for option (where the decoded-audio cache lives aside: the demo keeps it in its folder)."""
    assert defaults_of(demo.run_demo)["preset"] is PRESETS["demo"]
    teacher_argv = ["train-teacher", "--preset", "demo", "--data", synth_dataset, "--out", tmp_path / "teacher"]
    teacher = training.teacher_configs(parse(*teacher_argv))
    assert teacher == run.teacher_configs(synth_dataset, PRESETS["demo"])
    assert teacher.train.calibrate_batch_norm
    uncalibrated = training.teacher_configs(parse(*teacher_argv, "--no-calibrate-batch-norm"))
    assert uncalibrated.train == teacher.train.replace(calibrate_batch_norm=False)

    # A finished teacher for the student's configs: one epoch of narrow layers is enough, as the
    # student takes its teacher's architecture whatever it is.
    short = run.teacher_configs(
        synth_dataset,
        PRESETS["demo"].with_options(teacher={"epochs": 1, "batch_size": 64}),
        data_dir=str(tmp_path / "cache"),
    )
    narrow = short.model.replace(frontend_channels=4, hidden_size=32, memory_size=16)
    run.train(tmp_path / "teacher", dataclasses.replace(short, model=narrow), progress=False)
    student_argv = ["train", "--preset", "demo", "--teacher", tmp_path / "teacher", "--out", tmp_path / "student"]
    student = training.student_configs(parse(*student_argv))
    assert student == run.student_configs(tmp_path / "teacher", PRESETS["demo"])
    demo_model = PRESETS["demo"].model
    assert student.train == PRESETS["demo"].student and student.model.widths == PRESETS["demo"].student.widths
    student_options = ("memory_input", "per_width_batch_norm", "fe3_input_thresholds", "fc1_input_thresholds")
    for name in student_options:
        assert getattr(student.model, name) == getattr(demo_model, name), name

    # A flag replaces that option alone; new widths bring their weights, model and train alike.
    batch_norm = "--no-per-width-batch-norm" if demo_model.per_width_batch_norm else "--per-width-batch-norm"
    changed = training.student_configs(
        parse(
            *student_argv,
            *("--widths", "8", "4", "--binarizer", "irnet", "--fe3-input-thresholds", "-0.5", "0.5", batch_norm),
        )
    )
    assert (changed.train.widths, changed.train.width_weights, changed.model.widths) == ((8, 4), (1.0, 0.5), (8, 4))
    assert (changed.model.binarizer, changed.model.fe3_input_thresholds) == ("irnet", (-0.5, 0.5))
    assert changed.model.per_width_batch_norm != demo_model.per_width_batch_norm
    assert changed.model.fc1_input_thresholds == demo_model.fc1_input_thresholds
    assert changed.train.replace(widths=(8, 4, 2), width_weights=(1.0, 0.5, 0.25)) == student.train


def test_presets_are_complete_and_change_one_option_at_a_time():
    demo_preset = PRESETS["demo"]
    assert demo_preset.with_options() == demo_preset
    assert demo_preset.with_options(teacher={"epochs": None}, model={"profile": None}) == demo_preset
    assert demo_preset.with_options(teacher={"epochs": 3}).teacher == demo_preset.teacher.replace(epochs=3)
    with pytest.raises(TypeError):
        demo_preset.with_options(model={"no_such_option": 1})
    for name, preset in PRESETS.items():
        teacher = run.teacher_configs(Path("/data"), preset)
        assert teacher.train.widths == (preset.model.num_blocks,) and teacher.train.distill == "none", name
        assert (teacher.data.task, teacher.data.protocol) == (preset.data.task, preset.data.protocol), name
        # 12 classes, and the input shape of the preset's frontend
        shape = {"num_frames": preset.features.num_frames, "num_features": preset.features.num_features}
        assert teacher.model == preset.model.for_teacher().replace(**shape), name
        assert teacher.features == preset.features, name
