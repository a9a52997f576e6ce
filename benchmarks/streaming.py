"""Streaming keyword spotting on long recordings: recall, timing and false alarms per width and SNR.

For a finished ``bifsmn-tf demo`` output directory, builds long recordings from its synthetic
test split (:func:`bifsmn_tf.data.long_recording.keyword_recording`: every keyword
``--keywords-per-label`` times, 2-4 s apart over the set's background noise, then
``--noise-minutes`` of noise alone; with ``--talk``, non-keyword speech too), runs the converted
student of every width (``--widths``) over them once (``bifsmn-tf listen``'s spotter), replays
the recorded posteriors through the detector with the spotter's default settings or each
combination of ``--threshold`` and ``--smoothing-ms`` (:func:`bifsmn_tf.stream.replay`), and
scores the detections (:func:`bifsmn_tf.stream.score_detections`, which matches with
:func:`bifsmn_tf.detection.match_events`): a detection of the keyword from 250 ms before its
speech to 250 ms after it is a hit, each keyword and detection matched once. Figures written
before that matcher (BENCHMARKS.md, "Streaming keyword spotting", in noise) counted a
detection within ±250 ms of the speech's middle, matched greedily; a word lasts about 0.3-0.5 s,
so the window is now a little wider.

``--talk``: people talk between the commands. Every pause around a keyword also holds a run of
non-keyword words of the test split (every Speech Commands word but the keywords, pseudo-sentences
of 2-6 words), and the babble recording's test stretch follows the last keyword
(:func:`~bifsmn_tf.data.long_recording.keyword_recording` with ``talk=True``; a seed keeps its
keywords). Rows then add the minutes of non-keyword speech and the false alarms per hour of it:
every false alarm before the noise alone (in talk, babble or the pauses around the keywords) over
the hours of non-keyword speech, so a pause's false alarm counts against the talk too.

Conditions (``--snr``): ``as-made`` adds each clip at the level it was synthesised at over the
noise at gain 0.3 (the slow test ``test_trained_model_finds_keywords_in_a_long_recording``;
quiet takes sit below the noise there), a number puts every keyword's speech that many dB above
the noise under it (the keyword stays at its made level; the noise among the keywords is set).
Each condition is run on ``--recordings`` recordings (seeds ``--first-seed``, ``--first-seed`` + 1,
...), whose counts are summed.

    python benchmarks/streaming.py --demo bifsmn-demo [--snr as-made,20,10,5,0] [--recordings 2]
    python benchmarks/streaming.py --demo bifsmn-demo --snr as-made --widths 8 \
        --threshold 0.5,0.6,0.7,0.8 --smoothing-ms 100,300,500 --out /tmp/sweep.md
    python benchmarks/streaming.py --demo bifsmn-demo --talk --snr as-made --teacher \
        --out benchmarks/results/streaming_talk.md

Uses the demo's ``student/flatbuffers`` (converted by the demo); ``--teacher`` also runs the FP32
teacher's flatbuffer from there through the same spotter (rows with width "FP32 teacher"), to
show what the students are up against. Writes
``benchmarks/results/streaming.md`` and ``.json``. Runs on this host's CPU with LCE's
interpreter: accuracy figures, not latency.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import write_wav
from bifsmn_tf.data.long_recording import KeywordRecording, keyword_recording
from bifsmn_tf.fileio import atomic_write_text
from bifsmn_tf.records import KIND_FP32, MANIFEST, ConversionManifest
from bifsmn_tf.stream import (
    ConvertedModels,
    Hop,
    StreamConfig,
    build_spotter,
    read_converted,
    replay,
    score_detections,
    spot_file,
)
from bifsmn_tf.training.run import RunConfigs

RESULTS = Path(__file__).resolve().parent / "results"
AS_MADE = "as-made"
TOLERANCE_S = 0.25
#: The width under which ``--teacher`` runs the FP32 teacher (it has all 8 blocks).
TEACHER = "FP32 teacher"


def with_teacher_as_width_8(converted: ConvertedModels) -> ConvertedModels:
    """``converted`` whose only width, 8, is its FP32 teacher's flatbuffer (same input and labels)."""
    entry = ConversionManifest.load(converted.directory / MANIFEST).entry(KIND_FP32)
    return dataclasses.replace(converted, widths={8: converted.directory / entry.file})


def parse_snrs(text: str) -> list[float | None]:
    snrs: list[float | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            snrs.append(None if part == AS_MADE else float(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--snr: {part!r} is neither {AS_MADE!r} nor a number of dB") from None
    return snrs


def score_row(
    runs: list[tuple[KeywordRecording, list[Hop]]],
    labels: tuple[str, ...],
    config: StreamConfig,
    snr: float | None,
    model: str,
) -> dict:
    """Recall, timing and false alarms of ``config`` summed over ``(recording, hops)`` runs of
    ``model`` (a student width, or the teacher)."""
    scores = [
        score_detections(replay(hops, labels, config), r.events, r.speech_seconds, r.non_keyword_seconds, TOLERANCE_S)
        for r, hops in runs
    ]
    errors = np.concatenate([s.timing_errors_s for s in scores] + [[]])
    in_speech = sum(len(s.false_alarms_in_speech) for s in scores)
    talk_hours = sum(r.non_keyword_seconds for r, _ in runs) / 3600
    return {
        "snr_db": AS_MADE if snr is None else snr,
        "width": model,
        "threshold": config.threshold,
        "smoothing_ms": config.smoothing_ms,
        "keywords": sum(s.keywords for s in scores),
        "found": sum(s.found for s in scores),
        "timing_mean_ms": round(float(errors.mean()) * 1000, 1) if errors.size else None,
        "timing_sd_ms": round(float(errors.std()) * 1000, 1) if errors.size else None,
        "false_alarms_in_speech": in_speech,
        "false_alarms_in_noise": sum(len(s.false_alarms_in_noise) for s in scores),
        "minutes": round(sum(r.seconds for r, _ in runs) / 60, 2),
        "noise_minutes": round(sum(r.noise_seconds for r, _ in runs) / 60, 2),
        "non_keyword_minutes": round(talk_hours * 60, 2),
        # The recordings' own rates pooled: all their false alarms over all their talk.
        "false_alarms_per_hour_of_talk": round(in_speech / talk_hours, 1) if talk_hours else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", required=True, type=Path, help="a finished `bifsmn-tf demo --out` directory")
    parser.add_argument(
        "--snr",
        type=parse_snrs,
        default=parse_snrs(f"{AS_MADE},20,10,5,0"),
        help=f"comma-separated conditions: {AS_MADE!r} or dB of speech over noise",
    )
    parser.add_argument("--recordings", type=int, default=2, help="recordings per condition (seeds S..S+N-1)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the first recording (the slow test's recording is seed 0)",
    )
    parser.add_argument("--keywords-per-label", type=int, default=3)
    parser.add_argument("--noise-minutes", type=float, default=2.0)
    parser.add_argument(
        "--talk",
        action="store_true",
        help="lay non-keyword speech between the keywords; report false alarms per hour of it",
    )
    parser.add_argument("--widths", help="comma-separated widths (default: every converted one)")
    parser.add_argument(
        "--teacher", action="store_true", help="also run the FP32 teacher's flatbuffer through the same spotter"
    )
    parser.add_argument(
        "--threshold",
        default=str(StreamConfig.threshold),
        help="comma-separated spotter thresholds to try (default the spotter's)",
    )
    parser.add_argument(
        "--smoothing-ms",
        default=f"{StreamConfig.smoothing_ms:g}",
        help="comma-separated posterior smoothing spans to try (default the spotter's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "streaming.md")
    args = parser.parse_args(argv)

    run_dir = args.demo / "student"
    converted = read_converted(run_dir / "flatbuffers")
    root = Path(RunConfigs.load(run_dir).data.root)
    widths = [int(w) for w in args.widths.split(",")] if args.widths else list(converted.widths)
    thresholds = [float(t) for t in args.threshold.split(",")]
    smoothings = [float(m) for m in args.smoothing_ms.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for snr in args.snr:
            recordings = []
            for seed in range(args.first_seed, args.first_seed + args.recordings):
                recording = keyword_recording(
                    root,
                    keywords_per_label=args.keywords_per_label,
                    noise_minutes=args.noise_minutes,
                    snr_db=snr,
                    seed=seed,
                    talk=args.talk,
                )
                wav = Path(tmp) / f"{snr}-{seed}.wav"
                write_wav(wav, recording.samples)
                recordings.append((recording, wav))
            models = [(width, converted, width) for width in widths]
            if args.teacher:
                models.append((TEACHER, with_teacher_as_width_8(converted), 8))
            for model, source, width in models:
                # One pass of the model per recording; each setting replays its posteriors. A
                # spotter carries its stream's clock and history: a fresh one per recording.
                runs = []
                for recording, wav in recordings:
                    spotter = build_spotter(source, StreamConfig(width=width))
                    for _ in spot_file(wav, spotter):
                        pass
                    runs.append((recording, spotter.hops))
                for threshold, smoothing_ms in itertools.product(thresholds, smoothings):
                    config = StreamConfig(width=width, threshold=threshold, smoothing_ms=smoothing_ms)
                    rows.append(score_row(runs, converted.labels, config, snr, model))
                    print(rows[-1], flush=True)

    header = (
        f"Demo: `{args.demo}` (student flatbuffers, LCE interpreter on {platform.machine()}). "
        f"Recordings: {args.recordings} per condition (seeds {args.first_seed}-"
        f"{args.first_seed + args.recordings - 1}), each with every keyword "
        f"{args.keywords_per_label} times from the test split"
        f"{', non-keyword speech between them' if args.talk else ''} and {args.noise_minutes:g} min "
        f"of noise alone. Spotter: hop {StreamConfig.hop_ms:g} ms, smoothing and threshold as "
        f"listed; a detection counts from {TOLERANCE_S * 1000:.0f} ms before the keyword's speech "
        f"to {TOLERANCE_S * 1000:.0f} ms after it."
    )
    lines = [
        header,
        "",
        "| speech over noise | width | threshold | smoothing (ms) | recall | timing error, mean (SD) "
        "| false alarms among keywords | false alarms in noise alone | per minute of recording "
        "| per hour of non-keyword speech |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        snr = "as made (noise gain 0.3)" if r["snr_db"] == AS_MADE else f"{r['snr_db']:g} dB"
        timing = "–" if r["timing_mean_ms"] is None else f"{r['timing_mean_ms']:+.0f} ms ({r['timing_sd_ms']:.0f})"
        false_alarms = r["false_alarms_in_speech"] + r["false_alarms_in_noise"]
        per_hour = (
            "–"
            if r["false_alarms_per_hour_of_talk"] is None
            else f"{r['false_alarms_per_hour_of_talk']:g} (in {r['non_keyword_minutes']:g} min)"
        )
        lines.append(
            f"| {snr} | {r['width']} | {r['threshold']:g} | {r['smoothing_ms']:g} | "
            f"{100 * r['found'] / r['keywords']:.0f} % ({r['found']}/{r['keywords']}) | "
            f"{timing} | {r['false_alarms_in_speech']} | {r['false_alarms_in_noise']} "
            f"(in {r['noise_minutes']:g} min) | {false_alarms / r['minutes']:.2f} | {per_hour} |"
        )
    command = "python benchmarks/streaming.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines += ["", f"Command: `{command}`"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
