"""Throughput of the data pipeline on this machine: decode, augment, features, in clips/s.

Stages measured on one split:

- ``decode``: WAV files -> the int16 clip cache (``read_audio`` in a thread pool), cold;
- ``train``: the training stream from the cached clips: gather, augmentation
  (docs/design.md#augmentation), log-mel;
- ``train, no augmentation``: the same with augmentation off (the difference is its cost);
- ``eval``: the evaluation stream: gather and log-mel, in a fixed order.

Each stage reports wall-clock clips/s and clips per CPU-second of this process. Other processes
on the machine lower the first, not the second; with the 2 cores to itself, the pipeline's
wall-clock rate approaches twice the second (tf.data runs batches on both cores).

By default it runs on a generated dataset in the Speech Commands layout (tones of 0.5-1 s, two
noise files) in a temporary directory; ``--root`` measures a real one instead, e.g.
``--root ~/.cache/bifsmn-tf/speech_commands_v0.02 --task v2-12``.

    python benchmarks/data_pipeline.py [--clips-per-word 115] [--batch-size 96] [--epochs 3]

Writes ``benchmarks/results/data_pipeline.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

# Larq needs Keras 2: chosen before TensorFlow is imported (bifsmn_tf refuses Keras 3 once loaded).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from bifsmn_tf.bench import Stopwatch  # noqa: E402
from bifsmn_tf.data.augment import AugmentConfig  # noqa: E402
from bifsmn_tf.data.pipeline import DataConfig, load_split, make_dataset  # noqa: E402
from bifsmn_tf.features import FeatureConfig  # noqa: E402
from bifsmn_tf.fileio import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# The generated dataset reuses the tests' generator of the official layout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _rates(clips: int, timer: Stopwatch) -> dict[str, float]:
    return {
        "clips_per_s": round(clips / timer.wall, 1),
        "clips_per_cpu_s": round(clips / timer.cpu, 1),
    }


def _stream_rates(dataset: tf.data.Dataset, epochs: int) -> dict[str, float]:
    for _ in dataset:  # first pass: tracing and warm-up
        pass
    clips = 0
    with Stopwatch() as timer:
        for _ in range(epochs):
            for features, _labels in dataset:
                clips += int(features.shape[0])
    return _rates(clips, timer)


def run(args: argparse.Namespace) -> dict:
    features = FeatureConfig()
    with tempfile.TemporaryDirectory(prefix="bifsmn-bench-") as scratch:
        root = args.root
        if root is None:
            from speech_commands_tree import make_tree

            root = make_tree(Path(scratch) / "tree", "v2", clips_per_word=args.clips_per_word)
        config = DataConfig(
            task=args.task,
            data_dir=str(Path(scratch) / "data"),
            root=str(root),
            batch_size=args.batch_size,
        )
        with Stopwatch() as timer:
            clips = len(load_split(config, features, args.split).clips)
        unaugmented = config.replace(augment=AugmentConfig(enabled=False))
        stages = {
            "decode (WAV -> int16 cache, cold)": _rates(clips, timer),
            "train (cache -> augment -> log-mel)": _stream_rates(
                make_dataset(config, features, args.split, training=True), args.epochs
            ),
            "train, no augmentation (cache -> log-mel)": _stream_rates(
                make_dataset(unaugmented, features, args.split, training=True), args.epochs
            ),
            "eval (cache -> log-mel)": _stream_rates(make_dataset(config, features, args.split), args.epochs),
        }
        examples = len(load_split(config, features, args.split))
    return {
        "stages": stages,
        "dataset": "generated tones" if args.root is None else str(args.root),
        "split": args.split,
        "task": args.task,
        "files": clips,
        "examples": examples,
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
    }


def write_report(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "data_pipeline.json", json.dumps(report, indent=2) + "\n")
    lines = [
        "# Data pipeline throughput",
        "",
        f"{report['dataset']}, split `{report['split']}` of `{report['task']}`: "
        f"{report['files']} files, {report['examples']} examples, batch {report['batch_size']}, "
        f"{report['timed_epochs']} timed epochs after one warm-up epoch. "
        f"{report['cpus']} CPUs ({report['machine']}), 1-min load average "
        f"{report['load_average_1min']} at the end, TensorFlow {report['tensorflow']}.",
        "",
        "| stage | clips/s (wall) | clips per CPU-second |",
        "|---|---:|---:|",
        *(
            f"| {name} | {rates['clips_per_s']:,.0f} | {rates['clips_per_cpu_s']:,.0f} |"
            for name, rates in report["stages"].items()
        ),
        "",
        "Command: `python benchmarks/data_pipeline.py`",
        "",
    ]
    atomic_write_text(RESULTS / "data_pipeline.md", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="a dataset root (default: generate one)")
    parser.add_argument("--task", default="v2-12", help="default v2-12")
    parser.add_argument("--split", default="train", help="default train")
    parser.add_argument("--clips-per-word", type=int, default=115, help="generated set size")
    parser.add_argument("--batch-size", type=int, default=96, help="default 96 (official)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes (default 3)")
    report = run(parser.parse_args())
    write_report(report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
