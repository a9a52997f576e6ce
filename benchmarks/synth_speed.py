"""How fast ``bifsmn-tf data synth`` makes clips on this machine, per engine and for the default set.

Each row times ``bifsmn_tf.data.synthetic.generate`` from start to the finished set (process
start-up, background recordings, every clip written, synth.json) into a temporary directory and
reports clips per second of wall-clock time. Rows:

- every installed engine alone, one process (``--jobs 1``): the engine's own cost plus the
  perturbations and the WAV writing shared by all;
- the engines of a plain ``pip install bifsmn-tf`` (espeak, pico) and every installed engine,
  on every core;
- with ``--default-set``: the default set itself (``SynthConfig()``: v1, the default
  ``--clips-per-word``), with the plain-install engines and with every installed one.

    python benchmarks/synth_speed.py [--clips-per-word 20] [--default-set] [--out PATH]

Writes ``PATH.md`` and ``PATH.json`` (default ``benchmarks/results/synth_speed``). Other work on
the machine slows it, and so does an older CPU: the neural engines (Piper, Kokoro) run ONNX
models whose speed differs several-fold between x86 machines of the same core count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from bifsmn_tf.bench import Stopwatch, host_description
from bifsmn_tf.data import tts
from bifsmn_tf.data.synthetic import SynthConfig, default_jobs, generate
from bifsmn_tf.fileio import atomic_write_text

PLAIN_INSTALL = ("espeak", "pico")
RESULTS = Path(__file__).resolve().parent / "results"


def onnxruntime_version() -> str:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return "not installed"


def time_generation(config: SynthConfig, jobs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        with Stopwatch() as watch:
            result = generate(Path(tmp) / "set", config, jobs=jobs, progress=False)
        seconds, cpu = watch.wall, watch.cpu
    clips = result.counts["clips"]
    return {
        "engines": list(result.engines),
        "clips_per_word": config.clips_per_word,
        "jobs": jobs,
        "clips": clips,
        "seconds": round(seconds, 1),
        "clips_per_second": round(clips / seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "clips_per_cpu_second": round(clips / cpu, 1),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-word", type=int, default=20, help="speakers per timed set (default 20)")
    parser.add_argument("--default-set", action="store_true", help="also time the default set")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "synth_speed",
        metavar="PATH",
        help="report path without suffix: writes PATH.md and PATH.json (default: benchmarks/results/synth_speed)",
    )
    args = parser.parse_args()
    host, onnxruntime = host_description(), onnxruntime_version()
    installed = tts.installed_engines()
    cores = default_jobs()
    small = SynthConfig(clips_per_word=args.clips_per_word)
    plan = [(small.replace(engines=(engine,)), 1) for engine in installed]
    plan += [(small.replace(engines=PLAIN_INSTALL), cores), (small.replace(engines=installed), cores)]
    if args.default_set:
        plan += [(SynthConfig(engines=PLAIN_INSTALL), cores), (SynthConfig(engines=installed), cores)]
    rows = []
    for config, jobs in plan:
        rows.append(time_generation(config, jobs))
        print(json.dumps(rows[-1]), flush=True)

    command = "python benchmarks/synth_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "# Synthetic set: generation speed",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {host['cpu']} ({platform.machine()}), {os.cpu_count()} cores ({cores} used for the "
        "multi-process rows), shared with other work (the 1-minute load average at the end of each "
        "row is shown: above the number of cores, other work slowed the row). Time from the call to the "
        "finished set (start-up, background recordings, clips, synth.json), v1 words. CPU "
        "seconds add the worker processes; clips per CPU-second times the cores is the rate of "
        f"an otherwise idle machine. onnxruntime {onnxruntime} (Piper, Kokoro).",
        "",
        "| engines | clips per word | jobs | clips | seconds | clips/s | CPU s | clips/CPU-s | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {', '.join(r['engines'])} | {r['clips_per_word']} | {r['jobs']} | {r['clips']} | {r['seconds']} "
        f"| {r['clips_per_second']} | {r['cpu_seconds']} | {r['clips_per_cpu_second']} | {r['load_average']} |"
        for r in rows
    ]
    report = {"command": command.strip(), "host": host, "onnxruntime": onnxruntime, "rows": rows}
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
