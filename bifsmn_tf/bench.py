"""Latency of flatbuffers: measured on this host in LCE's interpreter, or read from the output of
LCE's ``lce_benchmark_model`` run on a device.

Two sources, one rule: a latency is labelled with the machine it was measured on. On x86 LCE runs
portable reference kernels (its optimized binary kernels are ARMv8 only), so a host figure ranks
models on that host and is never a Raspberry Pi figure; Pi figures come from
``deploy/pi_benchmark.py``, which runs ``lce_benchmark_model`` on the Pi and parses its output with
:func:`parse_benchmark_output`.

The parser knows the variations of the tool's output seen in the wild (``tests/data/
lce_benchmark_model/SOURCES.md``): lines with or without an ``INFO:`` prefix, integer, decimal and
scientific numbers, both memory-line wordings, op-profile tables with or without a ``[start]``
column, tab- or space-aligned, and ``Primary graph profile:`` / ``Subgraph`` sections.

The host itself: :func:`host_description` names its CPU, and :class:`Stopwatch` times a piece of
work with the cores it kept busy (the demo's stages, the benchmark scripts).
"""

from __future__ import annotations

import dataclasses
import platform
import re
import resource
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bifsmn_tf.records import MANIFEST, ConversionManifest, RecordError

HOST_LATENCY_NOTE = (
    "Measured in LCE's Python interpreter on this host. On x86, LCE runs portable reference "
    "kernels (its optimized binary kernels are ARMv8 only): these figures rank models on this "
    "host and are never a Raspberry Pi figure. Pi latencies come from deploy/pi_benchmark.py."
)

#: What to do about a damaged flatbuffer, said by every error about one.
CONVERT_AGAIN = "convert the model again (`bifsmn-tf convert`)"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class BenchmarkOutputError(ValueError):
    """The text is not (complete) ``lce_benchmark_model`` output."""


class FlatbufferError(ValueError):
    """A file is not a flatbuffer LCE's interpreter can run; the message names the file."""


# --- lce_benchmark_model output -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OpRecord:
    """One row of an op-profile table (``Run Order`` or ``Summary by node type``).

    ``avg_ms`` is the average time per inference spent in this node (``Run Order``) or in all nodes
    of this type (``Summary by node type``); ``count`` is the number of nodes of the type (summary
    only); ``name`` is the node's tensor name (``Run Order`` only).
    """

    node_type: str
    avg_ms: float
    percent: float | None = None
    times_called: int | None = None
    count: int | None = None
    name: str = ""


@dataclasses.dataclass(frozen=True)
class BenchmarkOutput:
    """What one run of ``lce_benchmark_model`` (or TFLite's ``benchmark_model``) reported.

    Times are microseconds as the tool prints them. ``inference_stats`` holds the ``count= first=
    curr= min= max= avg= std= [p5= median= p95=]`` line of the regular (non-warm-up) runs.
    ``run_order`` and ``node_types`` are the op profile of the regular runs (empty unless the tool
    ran with ``--enable_op_profiling=true``).
    """

    inference_avg_us: float
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_stats: dict[str, float] = dataclasses.field(default_factory=dict)
    warmup_stats: dict[str, float] = dataclasses.field(default_factory=dict)
    model_size_mb: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    run_order: tuple[OpRecord, ...] = ()
    node_types: tuple[OpRecord, ...] = ()

    def node_type_ms(self) -> dict[str, float]:
        """Average milliseconds per inference by node type (``Summary by node type``)."""
        return {record.node_type: record.avg_ms for record in self.node_types}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TIMINGS_LINE = re.compile(r"(?:Average )?[Ii]nference timings in us:(?P<items>.*)")
_TIMING_ITEM = re.compile(rf"(?P<key>[A-Za-z][A-Za-z ()]*?)\s*:\s*(?P<value>{_NUMBER})")
_TIMING_KEYS = {
    "Init": "init_us",
    "First inference": "first_inference_us",
    "Warmup (avg)": "warmup_avg_us",
    "Warmup": "warmup_avg_us",
    "Inference (avg)": "inference_avg_us",
    "Inference": "inference_avg_us",
}
_RUN_HEADER = re.compile(r"Running benchmark for at least")
_STATS_LINE = re.compile(rf"\bcount=(?:{_NUMBER})\s+first=")
_STATS_ITEM = re.compile(rf"(\w+)=({_NUMBER})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\):\s*(?P<mb>{_NUMBER})")
_MEMORY = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
    rf"\s*init=(?P<init>{_NUMBER})\s+overall=(?P<overall>{_NUMBER})"
)
_REGULAR_PROFILE = "Operator-wise Profiling Info for Regular Benchmark Runs"


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse the combined stdout/stderr of one ``lce_benchmark_model`` run.

    Raises :class:`BenchmarkOutputError` (quoting the end of the text) when the timing summary
    line with an inference average is missing, e.g. because the tool failed.
    """
    timings: dict[str, float] = {}
    stats_after_header: list[dict[str, float]] = []
    headers_seen = 0
    for line in text.splitlines():
        if _RUN_HEADER.search(line):
            headers_seen += 1
        elif _STATS_LINE.search(line) and "Timings (microseconds)" not in line:
            if headers_seen > len(stats_after_header):
                stats_after_header.append({k: float(v) for k, v in _STATS_ITEM.findall(line)})
        elif match := _TIMINGS_LINE.search(line):
            for item in _TIMING_ITEM.finditer(match["items"]):
                field = _TIMING_KEYS.get(item["key"].strip())
                if field is not None:
                    timings[field] = float(item["value"])
    if "inference_avg_us" not in timings:
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise BenchmarkOutputError(
            f"no 'Inference timings in us: ... Inference (avg): N' line in the benchmark output; it ends with:\n{tail}"
        )
    # The tool prints a warm-up block, then the regular block; each has one statistics line.
    warmup_stats = stats_after_header[0] if len(stats_after_header) >= 2 else {}
    inference_stats = stats_after_header[-1] if stats_after_header else {}
    size = _MODEL_SIZE.search(text)
    memory = _MEMORY.search(text)
    run_order, node_types = parse_op_profile(text)
    return BenchmarkOutput(
        inference_avg_us=timings["inference_avg_us"],
        init_us=timings.get("init_us"),
        first_inference_us=timings.get("first_inference_us"),
        warmup_avg_us=timings.get("warmup_avg_us"),
        inference_stats=inference_stats,
        warmup_stats=warmup_stats,
        model_size_mb=float(size["mb"]) if size else None,
        memory_init_mb=float(memory["init"]) if memory else None,
        memory_overall_mb=float(memory["overall"]) if memory else None,
        run_order=run_order,
        node_types=node_types,
    )


def parse_op_profile(text: str) -> tuple[tuple[OpRecord, ...], tuple[OpRecord, ...]]:
    """The ``Run Order`` and ``Summary by node type`` tables of the regular benchmark runs.

    Only the primary graph's tables are read (they come first); the initialization profile that
    precedes the regular-runs header is skipped. Output without that header (older tools) is read
    from its first tables.
    """
    start = text.find(_REGULAR_PROFILE)
    lines = (text[start:] if start >= 0 else text).splitlines()
    run_order: tuple[OpRecord, ...] = ()
    node_types: tuple[OpRecord, ...] = ()
    for index, line in enumerate(lines):
        if "==== Run Order ====" in line and not run_order:
            run_order = _parse_table(lines[index + 1 :])
        elif "==== Summary by node type ====" in line and not node_types:
            node_types = _parse_table(lines[index + 1 :])
    return run_order, node_types


_COLUMN_FIELDS = {
    "node type": "node_type",
    "avg ms": "avg_ms",
    "%": "percent",
    "avg %": "percent",
    "times called": "times_called",
    "count": "count",
    "name": "name",
}


def _parse_table(lines: Sequence[str]) -> tuple[OpRecord, ...]:
    """Rows of a profile table whose first line is the ``[column] [column] ...`` header."""
    if not lines:
        return ()
    columns = [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", lines[0])]
    if len(columns) < 2 or columns[0] != "node type":
        return ()
    has_name = columns[-1] == "name"
    numeric = columns[1 : len(columns) - 1] if has_name else columns[1:]
    row = re.compile(
        r"^\s*(?P<node_type>\S.*?)"
        + "".join(rf"\s+(?P<c{i}>{_NUMBER})%?" for i in range(len(numeric)))
        + (r"(?:\s+(?P<name>.*?))?" if has_name else "")
        + r"\s*$"
    )
    records = []
    for line in lines[1:]:
        match = row.match(line)
        if not match:
            break
        values: dict[str, Any] = {"node_type": match["node_type"].strip()}
        for i, column in enumerate(numeric):
            field = _COLUMN_FIELDS.get(column)
            if field is None:
                continue
            number = float(match[f"c{i}"])
            values[field] = int(number) if field in ("times_called", "count") else number
        if has_name:
            values["name"] = match["name"] or ""
        records.append(OpRecord(**values))
    return tuple(records)


# --- host latency ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostLatency:
    """Latency of one flatbuffer in LCE's interpreter on this host (milliseconds per inference)."""

    path: str
    bytes: int
    threads: int
    runs: int
    warmup_runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Stopwatch:
    """Wall-clock and CPU seconds between :meth:`start` and :meth:`stop` (or of a ``with``
    block), and how many cores that kept busy.

    CPU time counts every thread of this process and the child processes that ended in between,
    such as the synthetic set's workers (:func:`cpu_seconds`).
    """

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self._wall = self._cpu = 0.0

    def start(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def stop(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter() - self._wall, cpu_seconds() - self._cpu
        return self

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def cores_busy(self) -> float:
        """CPU seconds per wall-clock second (0 before anything was timed)."""
        return self.cpu / self.wall if self.wall > 0 else 0.0


def cpu_seconds() -> float:
    """User and system CPU seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def host_description() -> dict[str, str]:
    """The CPU this process runs on, for labelling host latencies."""
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; ARM boards say "Model" (e.g. "Raspberry Pi 4 Model B").
            if key.strip() in ("model name", "Model") and value.strip():
                cpu = value.strip()
                break
    return {
        "cpu": cpu or platform.processor() or "unknown CPU",
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
    }


def read_flatbuffer(path: str | Path) -> bytes:
    """The bytes of the TFLite flatbuffer at ``path``, unpacked whole once before any interpreter
    sees them: LCE's interpreter does not verify a flatbuffer, and one cut short crashes the
    process (a segfault, no exception). Raises :class:`FlatbufferError` naming the file."""
    from tensorflow.lite.python import schema_py_generated as schema

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        problem = f"cannot read it ({err.strerror or err})"
        raise FlatbufferError(f"{path}: {problem}; {CONVERT_AGAIN}") from None
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        problem = f"not a TFLite flatbuffer ({len(data)} bytes, no 'TFL3' identifier)"
        raise FlatbufferError(f"{path}: {problem}; {CONVERT_AGAIN}")
    try:
        schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as err:  # noqa: BLE001 - damaged bytes fail the unpacking in many ways
        problem = f"damaged TFLite flatbuffer (cut short?): {type(err).__name__}: {err}"
        raise FlatbufferError(f"{path}: {problem}; {CONVERT_AGAIN}") from None
    return data


def time_flatbuffer(
    flatbuffer: bytes, *, threads: int = 1, runs: int = 200, warmup_runs: int = 20, seed: int = 0
) -> np.ndarray:
    """Milliseconds of each of ``runs`` inferences of ``flatbuffer`` in LCE's interpreter.

    The input is random (uniform in [-1, 1], or the full int8 range for int8 inputs), as
    ``lce_benchmark_model`` does; the first ``warmup_runs`` inferences are not timed.
    """
    # Imported here so that the output parser, which deploy/pi_benchmark.py uses, does not pull in
    # TensorFlow (LCE's package imports it).
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if runs < 1 or warmup_runs < 0 or threads < 1:
        raise ValueError(f"need runs >= 1, warmup_runs >= 0, threads >= 1; got {runs}, {warmup_runs}, {threads}")
    interpreter = Interpreter(flatbuffer, num_threads=threads)
    rng = np.random.default_rng(seed)
    inputs = [
        _random_input(rng, shape, dtype) for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types)
    ]
    # The wrapper's per-sample predict: set inputs, invoke, read outputs, without the batching
    # loop of Interpreter.predict.
    invoke = interpreter.interpreter.predict
    for _ in range(warmup_runs):
        invoke(inputs)
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter_ns()
        invoke(inputs)
        times[i] = (time.perf_counter_ns() - start) / 1e6
    return times


def _random_input(rng: np.random.Generator, shape: Sequence[int], dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def bench_host(
    paths: Iterable[str | Path], *, threads: int = 1, runs: int = 200, warmup_runs: int = 20
) -> dict[str, Any]:
    """Host latency report of each flatbuffer: ``{"host", "note", "results": [HostLatency]}``."""
    from tqdm import tqdm

    results = []
    for path in tqdm(list(paths), desc="host latency", unit="model"):
        path = Path(path)
        flatbuffer = read_flatbuffer(path)
        try:
            times = time_flatbuffer(flatbuffer, threads=threads, runs=runs, warmup_runs=warmup_runs)
        except RuntimeError as err:
            raise FlatbufferError(
                f"{path}: LCE's interpreter cannot run it ({str(err).strip()}); {CONVERT_AGAIN}"
            ) from None
        results.append(
            HostLatency(
                path=str(path),
                bytes=len(flatbuffer),
                threads=threads,
                runs=runs,
                warmup_runs=warmup_runs,
                median_ms=float(np.median(times)),
                p90_ms=float(np.percentile(times, 90)),
                mean_ms=float(times.mean()),
                min_ms=float(times.min()),
            ).to_dict()
        )
    return {"host": host_description(), "note": HOST_LATENCY_NOTE, "results": results}


def flatbuffer_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories to their ``*.tflite`` files (in manifest order when there is one)."""
    expanded: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            manifest = path / MANIFEST
            if manifest.exists():
                try:
                    entries = ConversionManifest.load(manifest).models
                except RecordError as err:
                    raise FlatbufferError(f"{err}; convert again, or name the .tflite files") from None
                expanded.extend(path / entry.file for entry in entries)
            else:
                expanded.extend(sorted(path.glob("*.tflite")))
        elif path.is_file():
            expanded.append(path)
        else:
            raise FileNotFoundError(f"no flatbuffer or directory at {path}")
    if not expanded:
        raise FileNotFoundError(f"no .tflite files in {', '.join(map(str, paths))}")
    return expanded


def format_host_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`bench_host`'s report, headed by the host and the x86 note."""
    host = report["host"]
    lines = [
        f"host: {host['cpu']} ({host['machine']}, {host['system']})",
        f"note: {report['note']}",
        "",
        f"{'flatbuffer':<40} {'bytes':>10} {'threads':>7} {'median ms':>10} {'p90 ms':>8}",
    ]
    for result in report["results"]:
        lines.append(
            f"{Path(result['path']).name:<40} {result['bytes']:>10,} {result['threads']:>7} "
            f"{result['median_ms']:>10.3f} {result['p90_ms']:>8.3f}"
        )
    return "\n".join(lines)
