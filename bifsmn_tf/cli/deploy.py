"""``bifsmn-tf convert``, ``bench`` and ``listen``: flatbuffers of a run, their latency on this
host, and keyword spotting with them."""

from __future__ import annotations

from bifsmn_tf.cli.common import CliError, check_outputs, defaults_of, finite_float, raise_user_error


def register(verbs) -> None:
    """Add the deployment verbs to ``verbs``."""
    verbs.add_parser(
        "convert",
        help="LCE flatbuffers of every student width + FP32/int8 teacher TFLite, checked against Keras",
        description=(
            "Convert the best student of RUN_DIR at every trained width with LCE's converter, and "
            "its teacher to float TFLite and to full-integer int8 TFLite (post-training "
            "quantization on real training clips). Each file runs in LCE's interpreter on test "
            "clips against Keras (top-1 agreement, max logit difference). Writes manifest.json "
            "with sizes, op counts and both storage ratios."
        ),
        add_flags=_convert_flags,
    )
    verbs.add_parser(
        "bench",
        help="latency of flatbuffers in LCE's interpreter on this host (never a Pi figure)",
        description=(
            "Time each flatbuffer in LCE's interpreter on this host: warm-up, then median and p90 "
            "of --runs inferences at batch 1, labelled with this host's CPU. On x86 LCE runs "
            "portable reference kernels, so these figures rank models here and are never Raspberry "
            "Pi figures; for the Pi use deploy/pi_benchmark.py."
        ),
        add_flags=_bench_flags,
    )
    verbs.add_parser(
        "listen",
        help="keyword spotting on a WAV file or a live microphone with the converted flatbuffers",
        description=(
            "Slide a 1-s window over the audio every --hop-ms, run the student flatbuffer of the "
            "current width in LCE's interpreter, smooth the posteriors over --smoothing-ms and "
            "print each keyword whose smoothed posterior reaches --threshold, with its time. "
            "--width auto measures every converted width at start-up, takes the widest that fits "
            "--latency-budget-ms (default: the hop) and moves down under load, up when it passes."
        ),
        add_flags=_listen_flags,
    )


def _convert_flags(parser) -> None:
    from bifsmn_tf.convert import ConvertConfig
    from bifsmn_tf.records import INPUTS

    defaults = ConvertConfig()
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a BiFSMN student's training run (bifsmn-tf train)")
    parser.add_argument(
        "--data", metavar="DIR", help="dataset root of the calibration and check clips (default: the run's)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help="output directory (default RUN_DIR/flatbuffers, or flatbuffers_audio)"
    )
    parser.add_argument(
        "--input",
        choices=INPUTS,
        default=defaults.input,
        help="what the flatbuffers take: log-mel features, or raw 16 kHz audio with "
        "the feature frontend inside (default %(default)s)",
    )
    parser.add_argument(
        "--calibration-clips",
        type=int,
        default=defaults.calibration_clips,
        metavar="N",
        help="training clips for int8 calibration (default %(default)s)",
    )
    parser.add_argument(
        "--verify-clips",
        type=int,
        default=defaults.verify_clips,
        metavar="N",
        help="test clips for the Keras check, 0 for all (default %(default)s)",
    )
    parser.set_defaults(handler=_run_convert)


def _run_convert(args) -> int:
    from bifsmn_tf import convert

    check_outputs(directory=args.out)
    try:
        config = convert.ConvertConfig(
            input=args.input,
            calibration_clips=args.calibration_clips,
            verify_clips=args.verify_clips or None,
        )
        manifest = convert.convert_run(args.run_dir, args.out, config, data_root=args.data)
    except convert.ConversionError as err:
        raise CliError(str(err)) from None
    except Exception as err:
        raise_user_error(err)
    print(convert.format_manifest(manifest))
    return 0


def _bench_flags(parser) -> None:
    from bifsmn_tf import bench

    defaults = defaults_of(bench.bench_host)
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help=".tflite files, or directories of them (e.g. the output of convert)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=defaults["threads"],
        metavar="N",
        help="interpreter threads (default %(default)s)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=defaults["runs"],
        metavar="N",
        help="timed inferences per model (default %(default)s)",
    )
    parser.add_argument(
        "--warmup-runs",
        type=int,
        default=defaults["warmup_runs"],
        metavar="N",
        help="untimed inferences first (default %(default)s)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(handler=_run_bench)


def _run_bench(args) -> int:
    import json

    from bifsmn_tf import bench
    from bifsmn_tf.fileio import atomic_write_text

    if args.threads < 1 or args.runs < 1 or args.warmup_runs < 0:
        raise CliError("--threads and --runs must be at least 1, --warmup-runs at least 0")
    check_outputs(json_file=args.json)
    try:
        paths = bench.flatbuffer_paths(args.paths)
        report = bench.bench_host(paths, threads=args.threads, runs=args.runs, warmup_runs=args.warmup_runs)
    except (FileNotFoundError, bench.FlatbufferError) as err:
        raise CliError(str(err)) from None
    print(bench.format_host_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _listen_flags(parser) -> None:
    from bifsmn_tf.stream import StreamConfig

    defaults = StreamConfig()
    parser.add_argument(
        "models",
        metavar="MODEL_DIR_OR_MANIFEST",
        help="output of `bifsmn-tf convert` (a directory or its manifest.json)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--wav",
        metavar="FILE",
        help="a WAV file (any rate: resampled; several channels: averaged; shorter "
        "than the 1-s window: heard, with silence around it)",
    )
    source.add_argument("--mic", action="store_true", help="the default microphone (needs sounddevice)")
    parser.add_argument(
        "--hop-ms",
        type=finite_float,
        default=defaults.hop_ms,
        metavar="MS",
        help="window step in milliseconds (default %(default)g)",
    )
    parser.add_argument(
        "--threshold",
        type=finite_float,
        default=defaults.threshold,
        metavar="P",
        help="smoothed posterior, 0 to 1, that detects a keyword (default %(default)g)",
    )
    parser.add_argument(
        "--smoothing-ms",
        type=finite_float,
        default=defaults.smoothing_ms,
        metavar="MS",
        help="span the posteriors are averaged over, in milliseconds (default %(default)g)",
    )
    parser.add_argument(
        "--refractory-ms",
        type=finite_float,
        default=defaults.refractory_ms,
        metavar="MS",
        help="no repeat of a keyword within this many milliseconds (default %(default)g)",
    )
    parser.add_argument(
        "--width", default="auto", help="student width to run (a converted one, e.g. 8), or auto (default)"
    )
    parser.add_argument(
        "--latency-budget-ms",
        type=finite_float,
        metavar="MS",
        help="time per hop the auto width must fit, in milliseconds (default: --hop-ms)",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write the detections and, per hop, the width, latency and class posteriors as JSON",
    )
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
    check_outputs(json_file=args.json)
    try:
        config = stream.StreamConfig(
            hop_ms=args.hop_ms,
            threshold=args.threshold,
            smoothing_ms=args.smoothing_ms,
            refractory_ms=args.refractory_ms,
            width=None if args.width == "auto" else int(args.width),
            latency_budget_ms=args.latency_budget_ms,
        )
        spotter = stream.build_spotter(stream.read_converted(args.models), config)
        if spotter.selector is not None:
            calibrated = ", ".join(f"{w}: {ms:.2f} ms" for w, ms in spotter.selector.calibrated_ms.items())
            print(
                f"width auto, budget {config.budget_ms:g} ms per hop; measured per width: {calibrated}; "
                f"starting at width {spotter.width}"
            )
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
