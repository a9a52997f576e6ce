"""``bifsmn-tf train-teacher``, ``train``, ``evaluate`` and ``demo``: the runs of a preset.

Every training option not given as a flag is the preset's (:mod:`bifsmn_tf.training.presets`),
so ``train-teacher --preset demo`` and ``train --preset demo`` are the demo's runs; each flag's
help shows what each preset sets.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bifsmn_tf.cli.common import (
    as_tuple,
    check_outputs,
    choices_help,
    defaults_of,
    finite_float,
    raise_user_error,
    shown,
)

#: The TrainConfig fields every training verb's flags set (each flag's dest).
_TRAIN_FIELDS = ("epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "seed", "calibrate_batch_norm")
#: The student's TrainConfig fields beyond those.
_STUDENT_TRAIN_FIELDS = ("distill", "gamma", "logit_distill")


def register(verbs) -> None:
    """Add the training verbs to ``verbs``."""
    verbs.add_parser(
        "train-teacher",
        help="train the full-precision D-FSMN teacher",
        description=(
            "Train the FP D-FSMN teacher (the official DfsmnModel_pre) of a preset on a dataset in "
            "the Speech Commands layout, with the preset's optimizer on a per-epoch cosine "
            "schedule. RUN_DIR receives the configs, checkpoints (resumable: rerun the same "
            "command after an interruption), the best model by validation accuracy "
            "(RUN_DIR/model), metrics.csv, TensorBoard logs (RUN_DIR/logs) and training_curves.png."
        ),
        add_flags=_teacher_flags,
    )
    verbs.add_parser(
        "train",
        help="train the binary BiFSMN student, distilled from a teacher run",
        description=(
            "Train the thinnable 1-bit BiFSMN student of a preset: initialised from the teacher "
            "(docs/design.md), every step runs each width of --widths, adds cross-entropy and "
            "gamma x the distillation loss (HED: Haar high-pass enhanced teacher blocks; FID: "
            "BiFSMNv2's frequency-independent distillation) weighted by width over the number "
            "of blocks, and takes one optimizer step. The best checkpoint has accuracies that do "
            "not rise as the width shrinks. Task, features, data and architecture come from the "
            "teacher run. Rerun to resume."
        ),
        add_flags=_student_flags,
    )
    verbs.add_parser(
        "evaluate",
        help="accuracy per width, per-class table, confusion matrices, and false rejects against "
        "false accepts on non-keyword speech (DET curves) of a run",
        description=(
            "Evaluate the best model of RUN_DIR (teacher: one row; student: each trained width) "
            "on a split of a dataset in the Speech Commands layout. Prints the accuracy per width, "
            "recall per class, and how keywords stand against non-keyword speech (every "
            "non-keyword clip of the split kept): non-keywords rejected at argmax, and the "
            "false-reject and false-accept rates at the threshold chosen on the validation split "
            "for --far-target. Writes RUN_DIR/eval/<split>-<protocol>/ (or --out) with "
            "evaluation.json, report.md, confusion_w<width>.png and det.png."
        ),
        add_flags=_evaluate_flags,
    )
    verbs.add_parser(
        "demo",
        help="the whole pipeline on the built-in synthetic keyword set (45 to 90 minutes on a 2-core AMD EPYC)",
        description=(
            "Synthesize the keyword set into DIR/data (unless it is complete already, or --data "
            "names another), train the FP teacher and the BiFSMN student of the demo preset "
            "(bifsmn_tf/training/presets.py: `train-teacher --preset demo` and `train --preset "
            "demo` are the same runs), evaluate every width on the test split (accuracy; false "
            "rejects and false accepts on every non-keyword clip at the threshold chosen on "
            "validation, DET curves), convert every width to an LCE flatbuffer (plus the FP32 and "
            "int8 teachers, each checked in LCE's interpreter; DIR/student/flatbuffers), and "
            "print the results tables, saved as DIR/results.md and DIR/results.json. "
            "Interrupted, it resumes where it stopped when run again with the same --out."
        ),
        add_flags=_demo_flags,
    )


def _by_preset(value: Callable[[Any], Any]) -> str:
    """What an unset flag keeps, for its help: ``default: the preset's: paper 300, demo 50``."""
    from bifsmn_tf.training.presets import PRESETS

    values = {name: shown(value(preset)) for name, preset in PRESETS.items()}
    if len(set(values.values())) == 1:
        return f"default: the preset's, {next(iter(values.values()))}"
    return "default: the preset's: " + ", ".join(f"{name} {text}" for name, text in values.items())


def _common_flags(parser, recipe: Callable[[Any], Any]) -> None:
    """``--out``, ``--preset`` and the optimisation flags of ``recipe(preset)``'s TrainConfig."""
    from bifsmn_tf.training.presets import PRESETS
    from bifsmn_tf.training.trainer import OPTIMIZERS

    parser.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run directory (created; if it holds this run, the run resumes)"
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=next(iter(PRESETS)),
        help=f"the recipe every option not given as a flag comes from: "
        f"{choices_help(PRESETS)} (bifsmn_tf/training/presets.py says what "
        "each sets and why; each flag below shows both); default %(default)s",
    )
    group = parser.add_argument_group("optimisation (each flag replaces the preset's)")
    group.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help=f"passes over the training split ({_by_preset(lambda p: recipe(p).epochs)})",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"clips per optimizer step, split across GPUs ({_by_preset(lambda p: recipe(p).batch_size)})",
    )
    group.add_argument(
        "--lr",
        type=finite_float,
        dest="learning_rate",
        metavar="RATE",
        help="peak learning rate, on a cosine schedule stepped per epoch down to 0 "
        f"({_by_preset(lambda p: recipe(p).learning_rate)})",
    )
    group.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help=f"SGD with momentum, or Adam ({_by_preset(lambda p: recipe(p).optimizer)})",
    )
    group.add_argument(
        "--weight-decay",
        type=finite_float,
        metavar="COEFF",
        help="L2 coefficient on every trainable variable, coupled to the gradient as "
        f"torch's SGD ({_by_preset(lambda p: recipe(p).weight_decay)})",
    )
    group.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help=f"seed of initialisation, data order, augmentation and dropout ({_by_preset(lambda p: recipe(p).seed)})",
    )
    group.add_argument(
        "--calibrate-batch-norm",
        action=argparse.BooleanOptionalAction,
        help="keep the last epoch's model (not the best on validation) with its BN statistics "
        "recomputed as the mean over one more epoch of training batches, width by width, in "
        "place of the moving averages of training, which follow the last few dozen batches "
        f"({_by_preset(lambda p: recipe(p).calibrate_batch_norm)})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _train_options(args, fields: tuple[str, ...] = _TRAIN_FIELDS) -> dict[str, Any]:
    return {name: getattr(args, name) for name in fields}


def _frontend_flags(parser) -> None:
    from bifsmn_tf.features import FEATURE_KINDS

    group = parser.add_argument_group(
        "frontend (the features the teacher, and so its students, are trained on and converted with)",
        "Unset flags keep the preset's frontend "
        f"({_by_preset(lambda p: f'{p.features.n_fft}-point FFT, {p.features.summary}')}). "
        "On unseen speech engines of the synthetic set, --n-fft 512 --win-ms 30 --hop-ms 20 "
        '--n-mels 40 --per-bin-mean-removal did better (BENCHMARKS.md, "Synthetic set: transfer '
        'to unseen speech engines").',
    )
    group.add_argument(
        "--n-fft", type=int, metavar="POINTS", help="FFT length in samples, a power of two (TFLite's RFFT2D needs one)"
    )
    group.add_argument(
        "--win-ms",
        type=finite_float,
        metavar="MS",
        help="Hann window in milliseconds, a whole number of samples, zero-padded to "
        "--n-fft (the preset's, else as long as --n-fft)",
    )
    group.add_argument(
        "--hop-ms",
        type=finite_float,
        metavar="MS",
        help="time between frames in milliseconds, a whole number of samples",
    )
    group.add_argument("--n-mels", type=int, metavar="N", help="mel filters")
    group.add_argument("--features", dest="kind", choices=FEATURE_KINDS, help="log-mel, or MFCCs of it")
    group.add_argument("--n-mfcc", type=int, metavar="N", help="MFCCs kept with --features mfcc")
    group.add_argument(
        "--per-bin-mean-removal",
        action=argparse.BooleanOptionalAction,
        help="subtract each mel bin's mean over the clip from the features, in "
        "training and in every converted model (removes a fixed gain per band: "
        "timbre, microphone colouring)",
    )


def _frontend_options(args, sample_rate: int) -> dict[str, Any]:
    """The FeatureConfig fields the frontend flags set, times converted to samples."""
    from bifsmn_tf.features import ms_to_samples

    def samples(ms: float | None) -> int | None:
        return None if ms is None else ms_to_samples(ms, sample_rate)

    return {
        "n_fft": args.n_fft,
        "win_length": samples(args.win_ms),
        "hop_length": samples(args.hop_ms),
        "n_mels": args.n_mels,
        "kind": args.kind,
        "n_mfcc": args.n_mfcc,
        "per_bin_mean_removal": args.per_bin_mean_removal,
    }


def _teacher_flags(parser) -> None:
    from bifsmn_tf.data.labels import TASKS
    from bifsmn_tf.data.speech_commands import PROTOCOLS
    from bifsmn_tf.models.dfsmn import PROFILES

    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="dataset root in the Speech Commands layout (e.g. from `data synth`)",
    )
    _common_flags(parser, lambda preset: preset.teacher)
    group = parser.add_argument_group("data and model (each flag replaces the preset's)")
    group.add_argument("--task", choices=list(TASKS), help=f"label set ({_by_preset(lambda p: p.data.task)})")
    group.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="silence/unknown composition of the splits: bifsmn, every non-keyword "
        "clip unknown and all-zero silence; standard, 10%% unknown and noise "
        f"silence ({_by_preset(lambda p: p.data.protocol)})",
    )
    group.add_argument(
        "--train-unknown-share",
        type=finite_float,
        metavar="X",
        help="non-keyword clips per keyword clip in each training epoch, drawn afresh "
        "every epoch from every non-keyword of the training split; its students "
        "inherit it (none: the protocol's own unknown clips; "
        f"{_by_preset(lambda p: p.data.train_unknown_share)})",
    )
    group.add_argument(
        "--train-run-on-share",
        type=finite_float,
        metavar="X",
        help="one-second windows of non-keyword words said one after another, per non-keyword "
        "clip of the training split, added to the non-keyword clips the epochs draw from "
        "(needs --train-unknown-share; bifsmn_tf/data/run_ons.py; "
        f"{_by_preset(lambda p: p.data.train_run_on_share)})",
    )
    group.add_argument(
        "--profile",
        choices=PROFILES,
        help="paper: the published network; lean: a time-mean classifier head "
        f"({_by_preset(lambda p: p.model.profile)})",
    )
    _frontend_flags(parser)
    parser.set_defaults(handler=_run_teacher)


def teacher_configs(args: argparse.Namespace):
    """The :class:`~bifsmn_tf.training.run.RunConfigs` ``train-teacher`` trains with: the
    preset's, changed by the flags given."""
    from bifsmn_tf.training import run
    from bifsmn_tf.training.presets import PRESETS

    preset = PRESETS[args.preset]
    preset = preset.with_options(
        teacher=_train_options(args),
        model={"profile": args.profile},
        data={
            "task": args.task,
            "protocol": args.protocol,
            "train_unknown_share": args.train_unknown_share,
            "train_run_on_share": args.train_run_on_share,
        },
        features=_frontend_options(args, preset.features.sample_rate),
    )
    return run.teacher_configs(args.data, preset)


def _run_teacher(args) -> int:
    from bifsmn_tf.training import run

    check_outputs(directory=args.out)
    try:
        result = run.train(args.out, teacher_configs(args), progress=not args.no_progress)
    except Exception as err:
        raise_user_error(err)
    print(_run_summary(result))
    return 0


def _student_flags(parser) -> None:
    from bifsmn_tf.models.dfsmn import MEMORY_INPUTS
    from bifsmn_tf.models.quantizers import BINARIZERS
    from bifsmn_tf.training.distill import DISTILL_MODES

    parser.add_argument("--teacher", required=True, metavar="RUN_DIR", help="a finished train-teacher run")
    parser.add_argument(
        "--data", metavar="DIR", help="dataset root in the Speech Commands layout (default: the teacher's)"
    )
    _common_flags(parser, lambda preset: preset.student)
    group = parser.add_argument_group("student (each flag replaces the preset's)")
    group.add_argument(
        "--widths",
        type=int,
        nargs="+",
        metavar="W",
        help="depths to train, widest first, each dividing the number of blocks; "
        "weighted W / blocks in the loss "
        f"({_by_preset(lambda p: p.student.widths)})",
    )
    group.add_argument(
        "--distill",
        choices=DISTILL_MODES,
        help=f"hed (BiFSMN), fid (BiFSMNv2) or none ({_by_preset(lambda p: p.student.distill)})",
    )
    group.add_argument(
        "--gamma",
        type=finite_float,
        metavar="WEIGHT",
        help=f"weight of the distillation loss ({_by_preset(lambda p: p.student.gamma)})",
    )
    group.add_argument(
        "--logit-distill",
        type=finite_float,
        metavar="ALPHA",
        help="weight of the teacher's soft labels in each width's cross-entropy, "
        "(1-ALPHA) CE(labels) + ALPHA CE(teacher softmax) "
        f"({_by_preset(lambda p: p.student.logit_distill)})",
    )
    baselines = [name for name, method in BINARIZERS.items() if not method.lce_binary]
    group.add_argument(
        "--binarizer",
        choices=list(BINARIZERS),
        help=f"binarization method, one of {choices_help(BINARIZERS)} "
        "(bifsmn_tf/models/quantizers.py describes each); "
        f"{choices_help(baselines)} are training baselines that LCE keeps in "
        f"float ({_by_preset(lambda p: p.model.binarizer)})",
    )
    group.add_argument(
        "--memory-input",
        choices=MEMORY_INPUTS,
        help="what the memory convs see: binary, the sign of the residual stream "
        "(the paper's); float, the stream itself. LCE runs them as float "
        "depthwise convs either way; the 1x1 convs stay binary "
        f"({_by_preset(lambda p: p.model.memory_input)})",
    )
    group.add_argument(
        "--per-width-batch-norm",
        action=argparse.BooleanOptionalAction,
        help="give each width its own memory and hidden BN in every block (the official code "
        "shares them): a block run at several widths sees different inputs at each. Each "
        "flatbuffer keeps only its width's, folded: no bytes more "
        f"({_by_preset(lambda p: p.model.per_width_batch_norm)})",
    )
    for layer, cost in (
        ("fe3", "free up to 2 (fe3's 16 input channels fill half of LCE's 32-bit words)"),
        ("fc1", "4 KB more flatbuffer per extra threshold"),
    ):
        group.add_argument(
            f"--{layer}-input-thresholds",
            type=finite_float,
            nargs="+",
            metavar="T",
            help=f"where {layer}'s inputs are binarized, increasing: 0 alone is the "
            f"sign (the paper's); several (e.g. -0.5 0.5) give each input "
            "channel that many binary channels, a thermometer code, and "
            f"{layer} that many times the binary weights: {cost} "
            f"({_by_preset(lambda p, layer=layer: getattr(p.model, f'{layer}_input_thresholds'))})",
        )
    parser.set_defaults(handler=_run_student)


def student_configs(args: argparse.Namespace):
    """The :class:`~bifsmn_tf.training.run.RunConfigs` ``train`` trains with: the preset's
    student of the ``--teacher`` run, changed by the flags given."""
    from bifsmn_tf.training import run
    from bifsmn_tf.training.presets import PRESETS

    preset = PRESETS[args.preset].with_options(
        student={**_train_options(args, _TRAIN_FIELDS + _STUDENT_TRAIN_FIELDS), "widths": as_tuple(args.widths)},
        model={
            "binarizer": args.binarizer,
            "memory_input": args.memory_input,
            "per_width_batch_norm": args.per_width_batch_norm,
            "fe3_input_thresholds": as_tuple(args.fe3_input_thresholds),
            "fc1_input_thresholds": as_tuple(args.fc1_input_thresholds),
        },
    )
    return run.student_configs(args.teacher, preset, data_root=args.data)


def _run_student(args) -> int:
    from bifsmn_tf.training import run

    check_outputs(directory=args.out)
    try:
        result = run.train(args.out, student_configs(args), teacher_run=args.teacher, progress=not args.no_progress)
    except Exception as err:
        raise_user_error(err)
    print(_run_summary(result))
    return 0


def _run_summary(result) -> str:
    accuracy = ", ".join(f"width {w}: {100 * a:.2f}%" for w, a in result.best_val_accuracy.items())
    return (
        f"{result.run_dir}: {result.kind} trained for {result.epochs} epochs; best epoch "
        f"{result.best_epoch + 1} (validation {accuracy}); model in {result.run_dir / 'model'}"
    )


def _evaluate_flags(parser) -> None:
    from bifsmn_tf import evaluate
    from bifsmn_tf.data.speech_commands import PROTOCOLS, SPLITS

    defaults = defaults_of(evaluate.evaluate_run)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-teacher or train run directory")
    parser.add_argument("--data", metavar="DIR", help="dataset root in the Speech Commands layout (default: the run's)")
    parser.add_argument(
        "--split", default=defaults["split"], choices=SPLITS, help="split to evaluate (default %(default)s)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="bifsmn: all non-keywords are unknown, 10%% all-zero silence; standard: "
        "10%% unknown, 10%% noise silence (default: the run's)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        default=defaults["batch_size"],
        help="clips per inference batch; does not change the result (default %(default)s)",
    )
    parser.add_argument(
        "--far-target",
        type=finite_float,
        metavar="FRACTION",
        default=defaults["far_target"],
        help="false-accept rate on non-keyword speech, as a fraction, for which the "
        "detection threshold is chosen on the validation split; the report "
        "gives the false-reject and false-accept rates it yields on --split "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where evaluation.json, report.md and the PNGs go (default "
        "RUN_DIR/eval/<split>-<protocol>; needed for a run you cannot write to)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the evaluation JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> int:
    from bifsmn_tf import evaluate

    check_outputs(directory=args.out, json_file=args.json)
    try:
        result = evaluate.evaluate_run(
            args.run_dir,
            args.data,
            split=args.split,
            protocol=args.protocol,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            out_dir=args.out,
            far_target=args.far_target,
        )
    except Exception as err:
        raise_user_error(err)
    print(evaluate.format_report(result))
    if args.json:
        result.save(args.json)
    return 0


def _demo_flags(parser) -> None:
    from bifsmn_tf import demo
    from bifsmn_tf.training.presets import PRESETS

    defaults, preset = defaults_of(demo.run_demo), PRESETS["demo"]
    parser.add_argument(
        "--out",
        default=defaults["out_dir"],
        metavar="DIR",
        help="where data, runs and results go (default ./%(default)s)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="a dataset root in the Speech Commands layout with the words of the "
        f"{preset.data.task} task, trained on instead of synthesizing DIR/data",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the synthetic set and of both trainings (default: the demo's "
        f"own, set {demo.SYNTH.seed}, teacher {preset.teacher.seed}, student "
        f"{preset.student.seed})",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="synthesis worker processes; the set does not depend on it (default and at most: every core)",
    )
    _frontend_flags(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args) -> int:
    from bifsmn_tf import demo
    from bifsmn_tf.training.presets import PRESETS

    check_outputs(directory=args.out)
    try:
        preset = PRESETS["demo"]
        preset = preset.with_options(features=_frontend_options(args, preset.features.sample_rate))
        demo.run_demo(
            args.out, preset=preset, data=args.data, seed=args.seed, jobs=args.jobs, progress=not args.no_progress
        )
    except Exception as err:
        raise_user_error(err)
    return 0
