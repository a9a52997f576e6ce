#!/usr/bin/env python3
r"""Benchmark converted flatbuffers on a Raspberry Pi over SSH with LCE's ``lce_benchmark_model``.

Reads ``MODELS_DIR/manifest.json`` (written by ``bifsmn-tf convert``), copies the flatbuffers (and
the benchmark binary when ``--binary`` is given) to the Pi with ``scp``, runs
``lce_benchmark_model`` over ``ssh`` for every model and thread count, and writes to ``--out``:

- ``pi_benchmark.json``: device, flags, and per model and thread count the parsed tool output;
- ``pi_benchmark.md``: latency per width, speed-up over the FP32 and int8 teachers, size ratios,
  and where the time goes (op profile by node type);
- ``pi_benchmark.png``: latency per model and thread count;
- ``logs/``: the tool's raw output of every run.

Runs on the development host with bifsmn-tf installed: it reads the manifest through
:mod:`bifsmn_tf.records` and parses the tool's output with :mod:`bifsmn_tf.bench`, neither of which
imports TensorFlow. Nothing of bifsmn-tf is needed on the Pi.

Each model is timed without profiling (the headline latency) and, unless ``--no-op-profile``,
once more with ``--enable_op_profiling=true`` for the per-op breakdown, since profiling itself
costs time. See docs/raspberry-pi.md for getting the binary onto a 64-bit Raspberry Pi OS.

Example::

    python deploy/pi_benchmark.py bifsmn-demo/student/flatbuffers \\
        --host raspberrypi.local --user pi \\
        --binary ~/Downloads/lce_benchmark_model_aarch64 --threads 1 4 --taskset 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bifsmn_tf.bench import BenchmarkOutputError, parse_benchmark_output
from bifsmn_tf.fileio import atomic_path, atomic_write_text
from bifsmn_tf.records import KIND_FP32, KIND_INT8, MANIFEST, ConversionManifest, FlatbufferEntry, RecordError


class PiBenchmarkError(RuntimeError):
    """A step on the device failed; the message says which and quotes the device's answer."""


@dataclasses.dataclass(frozen=True)
class Remote:
    """An SSH destination; every call is a real ``ssh``/``scp`` subprocess."""

    host: str
    user: str | None = None
    port: int = 22
    identity: Path | None = None
    options: tuple[str, ...] = ()

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _common(self, port_flag: str) -> list[str]:
        # BatchMode: fail instead of waiting for a password prompt nobody will answer.
        args = [port_flag, str(self.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
        if self.identity is not None:
            args += ["-i", str(self.identity)]
        for option in self.options:
            args += ["-o", option]
        return args

    def run(self, command: Sequence[str], *, what: str) -> str:
        """Run ``command`` on the device; return its stdout and stderr interleaved as printed."""
        ssh = ["ssh", *self._common("-p"), self.destination, shlex.join(command)]
        # lce_benchmark_model logs to stderr; one stream keeps its lines in order.
        result = subprocess.run(ssh, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = result.stdout
        if result.returncode != 0:
            raise PiBenchmarkError(
                f"{what} failed on {self.destination} (exit {result.returncode}): "
                f"`{shlex.join(command)}`\n{output.strip()}"
            )
        return output

    def copy(self, files: Sequence[Path], remote_dir: str) -> None:
        scp = [
            "scp",
            "-q",
            *self._common("-P"),
            *map(str, files),
            f"{self.destination}:{remote_dir}/",
        ]
        result = subprocess.run(scp, capture_output=True, text=True)
        if result.returncode != 0:
            raise PiBenchmarkError(
                f"copying {len(files)} file(s) to {self.destination}:{remote_dir} failed "
                f"(exit {result.returncode}):\n{(result.stdout + result.stderr).strip()}"
            )


def read_manifest(models_dir: Path) -> tuple[FlatbufferEntry, ...]:
    """The flatbuffers listed by ``models_dir/manifest.json``, checked to exist on disk."""
    manifest_path = models_dir / MANIFEST
    if not manifest_path.exists():
        raise PiBenchmarkError(f"{manifest_path} not found: run `bifsmn-tf convert RUN_DIR` first")
    try:
        models = ConversionManifest.load(manifest_path).models
    except RecordError as err:
        raise PiBenchmarkError(f"{err}; run `bifsmn-tf convert` again") from None
    missing = [m.file for m in models if not (models_dir / m.file).exists()]
    if missing:
        raise PiBenchmarkError(f"{manifest_path} lists files that are missing: {missing}")
    return models


def describe_device(remote: Remote) -> dict[str, str]:
    """What the device says it is: machine (``uname -m``), OS, and board or CPU model."""
    machine = remote.run(["uname", "-m"], what="uname").strip()
    system = remote.run(["uname", "-sr"], what="uname").strip()
    # /proc/device-tree/model names the board on a Pi ("Raspberry Pi 4 Model B Rev 1.4");
    # elsewhere fall back to the CPU model from /proc/cpuinfo.
    probe = (
        "if [ -r /proc/device-tree/model ]; then tr -d '\\0' < /proc/device-tree/model; "
        "else sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1; fi"
    )
    model = remote.run(["sh", "-c", probe], what="device model").strip()
    return {"machine": machine, "system": system, "model": model or "unknown"}


def benchmark_command(
    binary: str,
    graph: str,
    *,
    threads: int,
    runs: int,
    warmup_runs: int,
    profile: bool,
    use_xnnpack: bool,
    taskset: str | None,
) -> list[str]:
    command = [] if taskset is None else ["taskset", taskset]
    command += [
        binary,
        f"--graph={graph}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
        f"--warmup_runs={warmup_runs}",
        f"--use_xnnpack={str(use_xnnpack).lower()}",
    ]
    if profile:
        command.append("--enable_op_profiling=true")
    return command


def run_benchmarks(args: argparse.Namespace, remote: Remote, models: Sequence[FlatbufferEntry]) -> dict[str, Any]:
    models_dir = Path(args.models_dir)
    remote_dir = args.remote_dir
    remote.run(["mkdir", "-p", remote_dir], what="creating the remote directory")
    remote.copy([models_dir / m.file for m in models], remote_dir)
    binary = f"{remote_dir}/{args.remote_binary}"
    if args.binary is not None:
        remote.copy([Path(args.binary)], remote_dir)
        if Path(args.binary).name != args.remote_binary:
            remote.run(["mv", f"{remote_dir}/{Path(args.binary).name}", binary], what="placing the binary")
        remote.run(["chmod", "+x", binary], what="chmod +x on the binary")
    remote.run(
        [
            "sh",
            "-c",
            f"test -x {shlex.quote(binary)} || {{ echo missing: {shlex.quote(binary)}; exit 1; }}",
        ],
        what="finding lce_benchmark_model (copy it with --binary, see deploy/README.md)",
    )
    device = describe_device(remote)
    logs_dir = Path(args.out) / "logs"
    results = []
    for model in models:
        for threads in args.threads:
            entry: dict[str, Any] = {
                "file": model.file,
                "kind": model.kind,
                "width": model.width,
                "bytes": model.bytes,
                "threads": threads,
            }
            passes = [("timing", False)] + ([("op_profile", True)] if args.op_profile else [])
            for label, profile in passes:
                command = benchmark_command(
                    binary,
                    f"{remote_dir}/{model.file}",
                    threads=threads,
                    runs=args.profile_runs if profile else args.runs,
                    warmup_runs=args.warmup_runs,
                    profile=profile,
                    use_xnnpack=args.use_xnnpack,
                    taskset=args.taskset,
                )
                print(f"{model.file}  threads={threads}  {label}", file=sys.stderr)
                output = remote.run(command, what=f"lce_benchmark_model on {model.file}")
                atomic_write_text(
                    logs_dir / f"{Path(model.file).stem}_t{threads}_{label}.txt",
                    f"$ {shlex.join(command)}\n{output}",
                )
                try:
                    parsed = parse_benchmark_output(output)
                except BenchmarkOutputError as err:
                    raise PiBenchmarkError(f"{model.file}, {threads} thread(s): {err}") from None
                if profile:
                    entry["op_profile_ms"] = parsed.node_type_ms()
                else:
                    entry["command"] = shlex.join(command)
                    entry["output"] = parsed.to_dict()
                    entry["latency_ms"] = parsed.inference_avg_us / 1000.0
            results.append(entry)
    return {
        "device": device,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "flags": {
            "runs": args.runs,
            "warmup_runs": args.warmup_runs,
            "threads": list(args.threads),
            "taskset": args.taskset,
            "use_xnnpack": args.use_xnnpack,
        },
        "results": add_ratios(results),
    }


def add_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add speed-ups over the FP32 and int8 teachers (same thread count) and the size ratio."""
    fp32_bytes = next((r["bytes"] for r in results if r["kind"] == KIND_FP32), None)
    by_threads: dict[tuple[str, int], float] = {
        (r["kind"], r["threads"]): r["latency_ms"] for r in results if r["kind"] in (KIND_FP32, KIND_INT8)
    }
    for r in results:
        fp32 = by_threads.get((KIND_FP32, r["threads"]))
        int8 = by_threads.get((KIND_INT8, r["threads"]))
        r["speedup_vs_fp32"] = fp32 / r["latency_ms"] if fp32 else None
        r["speedup_vs_int8"] = int8 / r["latency_ms"] if int8 else None
        r["size_ratio_vs_fp32"] = fp32_bytes / r["bytes"] if fp32_bytes else None
    return results


def device_warning(device: dict[str, str]) -> str | None:
    if device["machine"] != "aarch64":
        return (
            f"The device reports machine `{device['machine']}`, not `aarch64`: these are not "
            "Raspberry Pi (64-bit OS) figures."
        )
    return None


def markdown_report(report: dict[str, Any]) -> str:
    device, flags, results = report["device"], report["flags"], report["results"]
    threads = flags["threads"]
    lines = [
        "# lce_benchmark_model on the device",
        "",
        f"- device: {device['model']} ({device['machine']}, {device['system']})",
        f"- date: {report['date']}",
        f"- flags: --num_runs={flags['runs']} --warmup_runs={flags['warmup_runs']} "
        f"--use_xnnpack={str(flags['use_xnnpack']).lower()}"
        + (f", pinned with `taskset {flags['taskset']}`" if flags["taskset"] else ", not pinned"),
        "- latency: the tool's `Inference (avg)`, milliseconds per inference at batch 1",
    ]
    warning = device_warning(device)
    if warning:
        lines += ["", f"**{warning}**"]
    header = ["model", "kind", "width", "bytes", "× smaller than FP32"]
    for t in threads:
        header += [f"ms, {t} thr", f"× vs FP32, {t} thr", f"× vs int8, {t} thr"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for file in dict.fromkeys(r["file"] for r in results):
        rows = {r["threads"]: r for r in results if r["file"] == file}
        first = rows[threads[0]]
        cells = [
            f"`{file}`",
            first["kind"],
            _cell(first["width"]),
            f"{first['bytes']:,}",
            _ratio(first["size_ratio_vs_fp32"]),
        ]
        for t in threads:
            cells += [
                f"{rows[t]['latency_ms']:.3f}",
                _ratio(rows[t]["speedup_vs_fp32"]),
                _ratio(rows[t]["speedup_vs_int8"]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    profiled = [r for r in results if r.get("op_profile_ms") and r["threads"] == threads[0]]
    if profiled:
        lines += [
            "",
            f"## Where the time goes ({threads[0]} thread(s), `--enable_op_profiling=true`)",
            "",
            "| model | LCE ops ms (share) | float ops ms | top node types |",
            "|---|---|---|---|",
        ]
        for r in profiled:
            ops = r["op_profile_ms"]
            lce = sum(ms for op, ms in ops.items() if op.startswith("Lce"))
            total = sum(ops.values())
            top = ", ".join(f"{op} {ms:.3f}" for op, ms in sorted(ops.items(), key=lambda kv: -kv[1])[:4])
            share = f"{lce:.3f} ({100 * lce / total:.0f} %)" if total else f"{lce:.3f}"
            lines.append(f"| `{r['file']}` | {share} | {total - lce:.3f} | {top} |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def plot_report(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    threads = report["flags"]["threads"]
    files = list(dict.fromkeys(r["file"] for r in results))
    latency = {(r["file"], r["threads"]): r["latency_ms"] for r in results}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(files)), 4.0))
    bar = 0.8 / len(threads)
    for i, t in enumerate(threads):
        xs = [j + (i - (len(threads) - 1) / 2) * bar for j in range(len(files))]
        ax.bar(xs, [latency[(f, t)] for f in files], width=bar, label=f"{t} thread(s)")
    ax.set_xticks(range(len(files)), [Path(f).stem for f in files], rotation=30, ha="right")
    ax.set_ylabel("ms per inference (Inference avg)")
    device = report["device"]
    ax.set_title(f"lce_benchmark_model on {device['model']} ({device['machine']})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models_dir", help="directory written by `bifsmn-tf convert` (has manifest.json)")
    parser.add_argument("--host", required=True, help="the Pi's host name or address")
    parser.add_argument("--user", help="SSH user (default: ssh's own default)")
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--identity", type=Path, help="SSH private key file")
    parser.add_argument(
        "--ssh-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra `ssh -o` option, repeatable (e.g. UserKnownHostsFile=...)",
    )
    parser.add_argument(
        "--remote-dir",
        default="bifsmn-bench",
        help="directory on the Pi (relative paths are under the user's home)",
    )
    parser.add_argument("--binary", help="local lce_benchmark_model (aarch64) to copy to the Pi")
    parser.add_argument(
        "--remote-binary",
        default="lce_benchmark_model",
        help="the binary's name inside --remote-dir",
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--runs", type=int, default=500, help="--num_runs of the timing pass")
    parser.add_argument("--warmup-runs", type=int, default=50)
    parser.add_argument("--profile-runs", type=int, default=100, help="--num_runs of the profiling pass")
    parser.add_argument(
        "--no-op-profile",
        dest="op_profile",
        action="store_false",
        help="skip the --enable_op_profiling=true pass",
    )
    parser.add_argument(
        "--use-xnnpack",
        action="store_true",
        help="XNNPACK for the float ops (LCE's published numbers use it)",
    )
    parser.add_argument("--taskset", help="CPU mask to pin the tool with, e.g. 8 for core 3")
    parser.add_argument("--out", default="benchmarks/results/pi", help="output directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    remote = Remote(
        host=args.host,
        user=args.user,
        port=args.port,
        identity=args.identity,
        options=tuple(args.ssh_option),
    )
    try:
        models = read_manifest(Path(args.models_dir))
        report = run_benchmarks(args, remote, models)
    except PiBenchmarkError as err:
        print(f"pi_benchmark: error: {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    atomic_write_text(out / "pi_benchmark.json", json.dumps(report, indent=2) + "\n")
    markdown = markdown_report(report)
    atomic_write_text(out / "pi_benchmark.md", markdown)
    plot_report(report, out / "pi_benchmark.png")
    print(markdown)
    warning = device_warning(report["device"])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
