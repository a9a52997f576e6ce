"""Streaming keyword spotting: a sliding 1-s window over a WAV file or a live microphone, run
through the converted flatbuffers, with the width chosen at run time.

Every ``hop_ms`` the last second of audio goes through the student flatbuffer of the current
width (with the feature frontend inside it for ``--input audio`` conversions, or computed here by
the same Keras frontend layer). The class posteriors (softmax of the logits) are averaged over the
last ``smoothing_ms``; a keyword whose smoothed posterior reaches ``threshold`` opens a detection,
which closes when it falls below again and is reported at the middle of the stretch above the
threshold (corrected for the smoothing delay), so the reported time is where the word is, not when
the detector was sure; a word at the very start is reported at 0 s at the earliest, never before the
audio. A keyword is not reported twice within ``refractory_ms``. Audio shorter than the 1-s window
is heard too: the window starts as silence, and a file is followed by silence until the last window
holds only one hop of the file.

**Width at run time.** ``width`` fixes one of the converted widths. ``width=None`` (``--width
auto``) measures each width's latency per hop on this machine at start-up and takes the widest
that fits ``latency_budget_ms`` (default: the hop, i.e. real time). While running it tracks the
measured time per hop against that calibration: when the machine gets busy (the ratio grows) and
the current width no longer fits, it moves down at once; when the load passes, it moves back up
after ``patience`` hops with room to spare. That is the thinnable network's promise made usable: one
model, the accuracy the machine can afford at the moment.

Runs on the development host with LCE's Python interpreter (there is no LCE wheel for aarch64;
see docs/raspberry-pi.md). The microphone needs the optional ``sounddevice`` package (PortAudio).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bifsmn_tf.bench import CONVERT_AGAIN, FlatbufferError, read_flatbuffer
from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.data.audio import read_wav
from bifsmn_tf.data.labels import SILENCE, UNKNOWN
from bifsmn_tf.detection import match_events
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.records import MANIFEST, ConversionManifest, RecordError
from bifsmn_tf.runtime import FlatbufferModel


class StreamError(ValueError):
    """The models or the audio source cannot be used as asked; the message says why."""


#: A detection is reported half the smoothing span late, and a word (about a second of windows)
#: weighs a tenth of a 10-s average: longer smoothing leaves nothing to detect.
MAX_SMOOTHING_MS = 10_000.0

#: The StreamConfig fields `bifsmn-tf listen` sets from the flag of the same name.
_LISTEN_FLAGS = ("hop_ms", "threshold", "smoothing_ms", "refractory_ms", "width", "latency_budget_ms")


@dataclasses.dataclass(frozen=True)
class StreamConfig(JsonConfig):
    """Settings of the sliding-window keyword spotter.

    Attributes:
        hop_ms: milliseconds between two evaluations of the 1-s window.
        threshold: smoothed posterior a keyword must reach to be detected.
        smoothing_ms: posteriors are averaged over this span (at least one hop).
        refractory_ms: the same keyword is not reported again within this time.
        width: the student width to run; ``None`` picks it at run time (``--width auto``).
        latency_budget_ms: time per hop the automatic width must fit; ``None``: ``hop_ms``.
        patience: hops with room to spare before the automatic width moves up again.
    """

    # Threshold and smoothing: the only pair of a sweep (0.4-0.8 x 100-500 ms) that found at least
    # 80 % of the keywords with at most one false alarm per minute, on four long recordings the
    # demo's student had not been tuned on (BENCHMARKS.md, "Streaming keyword spotting").
    hop_ms: float = 100.0
    threshold: float = 0.6
    smoothing_ms: float = 500.0
    refractory_ms: float = 1000.0
    width: int | None = None
    latency_budget_ms: float | None = None
    patience: int = 20

    def __post_init__(self) -> None:
        def require(name: str, ok: bool, rule: str) -> None:
            if not ok:
                what = f"StreamConfig.{name}"
                if name in _LISTEN_FLAGS:  # `bifsmn-tf listen` hands its flags over unchecked
                    what = f"--{name.replace('_', '-')} ({what})"
                raise ConfigError(f"{what} must be {rule}, got {getattr(self, name)!r}")

        def finite(value: Any) -> bool:
            # NaN passes no comparison, so it would slip through every range check below.
            real = isinstance(value, (int, float)) and not isinstance(value, bool)
            return real and math.isfinite(value)

        def positive_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        require("hop_ms", finite(self.hop_ms) and self.hop_ms > 0, "a time in ms > 0")
        require("threshold", finite(self.threshold) and 0 < self.threshold <= 1, "in (0, 1]")
        require(
            "smoothing_ms",
            finite(self.smoothing_ms) and 0 <= self.smoothing_ms <= MAX_SMOOTHING_MS,
            f"from 0 (one hop) to {MAX_SMOOTHING_MS:g} ms",
        )
        require("refractory_ms", finite(self.refractory_ms) and self.refractory_ms >= 0, ">= 0 ms")
        require(
            "latency_budget_ms",
            self.latency_budget_ms is None or (finite(self.latency_budget_ms) and self.latency_budget_ms > 0),
            "a time in ms > 0 (unset: the hop)",
        )
        require(
            "width",
            self.width is None or positive_int(self.width),
            "a converted width (a positive integer), or auto (None)",
        )
        require("patience", positive_int(self.patience), "an integer >= 1")

    @property
    def budget_ms(self) -> float:
        return self.hop_ms if self.latency_budget_ms is None else self.latency_budget_ms

    @property
    def smoothing_hops(self) -> int:
        return max(1, round(self.smoothing_ms / self.hop_ms))


@dataclasses.dataclass(frozen=True)
class Detection:
    """A keyword at ``time_s`` seconds into the stream, with its peak smoothed posterior."""

    time_s: float
    label: str
    score: float
    width: int

    def __str__(self) -> str:
        return f"{self.time_s:9.2f} s  {self.label:<10} score {self.score:.2f}  width {self.width}"


@dataclasses.dataclass(frozen=True)
class Hop:
    """One evaluation: window centre, the width that ran, the time it took, and its posteriors."""

    time_s: float
    width: int
    latency_ms: float
    posteriors: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "posteriors": np.round(self.posteriors, 5).tolist()}


class KeywordModel:
    """One student flatbuffer fed 1-s windows of audio: ``model(window) -> posteriors (C,)``.

    ``frontend`` computes features from the window for flatbuffers that take features; ``None``
    for flatbuffers that take audio (the frontend is inside them).
    """

    def __init__(self, flatbuffer: bytes, frontend: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self.flatbuffer = FlatbufferModel(flatbuffer)
        self.frontend = frontend

    def __call__(self, window: np.ndarray) -> np.ndarray:
        inputs = window[np.newaxis].astype(np.float32)
        if self.frontend is not None:
            inputs = self.frontend(inputs)
        logits = self.flatbuffer(inputs)[0]
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()


class WidthSelector:
    """The widest width whose latency fits the budget, following the machine's load.

    ``calibrated_ms`` are the widths' latencies measured at start-up. Each :meth:`update` takes the
    latency just measured at the current width; the load factor (measured over calibrated, an
    exponential average) predicts every width's latency now. The selector moves down as soon as the
    current width is predicted over budget, and up only after ``patience`` consecutive updates in
    which the wider width is predicted to fit with ``headroom`` to spare.
    """

    def __init__(
        self,
        calibrated_ms: dict[int, float],
        budget_ms: float,
        *,
        patience: int = 20,
        headroom: float = 0.8,
        averaging: float = 0.3,
    ) -> None:
        if not calibrated_ms:
            raise ValueError("WidthSelector: no widths")
        self.calibrated_ms = dict(sorted(calibrated_ms.items(), reverse=True))
        self.budget_ms = budget_ms
        self.patience = patience
        self.headroom = headroom
        self.averaging = averaging
        self.load = 1.0
        self._room_streak = 0
        self.width = self._widest_fitting(budget_ms)

    def _widest_fitting(self, budget_ms: float) -> int:
        for width, latency in self.calibrated_ms.items():
            if latency * self.load <= budget_ms:
                return width
        return min(self.calibrated_ms)

    def predicted_ms(self, width: int) -> float:
        return self.calibrated_ms[width] * self.load

    def update(self, measured_ms: float) -> int:
        """Record a latency measured at the current width; return the width to run next."""
        ratio = measured_ms / self.calibrated_ms[self.width]
        self.load = (1 - self.averaging) * self.load + self.averaging * ratio
        widths = list(self.calibrated_ms)
        position = widths.index(self.width)
        if self.predicted_ms(self.width) > self.budget_ms and position + 1 < len(widths):
            self.width = self._widest_fitting(self.budget_ms)
            self._room_streak = 0
        elif position > 0 and self.predicted_ms(widths[position - 1]) <= self.headroom * self.budget_ms:
            self._room_streak += 1
            if self._room_streak >= self.patience:
                self.width = widths[position - 1]
                self._room_streak = 0
        else:
            self._room_streak = 0
        return self.width


class PosteriorDetector:
    """Smoothing, threshold and events over a stream of posterior vectors (one per hop)."""

    def __init__(self, labels: Iterable[str], config: StreamConfig) -> None:
        self.labels = tuple(labels)
        self.keywords = np.array([i for i, label in enumerate(self.labels) if label not in (SILENCE, UNKNOWN)])
        if len(self.keywords) == 0:
            raise StreamError(f"no keyword among the labels {self.labels}")
        self.config = config
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=config.smoothing_hops)
        self._event: dict[str, Any] | None = None
        self._last_reported: dict[str, float] = {}

    def update(self, time_s: float, posteriors: np.ndarray, width: int) -> list[Detection]:
        """Add the posteriors of the window centred at ``time_s``; return closed detections."""
        self._recent.append(np.asarray(posteriors, dtype=np.float64))
        smoothed = np.mean(self._recent, axis=0)
        best = int(self.keywords[np.argmax(smoothed[self.keywords])])
        score = float(smoothed[best])
        # A moving average over the last n hops lags them by (n - 1) / 2 hops; n is below the
        # smoothing span until the stream has run that long.
        at = time_s - (len(self._recent) - 1) / 2 * self.config.hop_ms / 1000.0
        closed = []
        if self._event is not None and (score < self.config.threshold or best != self._event["index"]):
            closed = self._close()
        if score >= self.config.threshold:
            if self._event is None:
                self._event = {
                    "index": best,
                    "start": at,
                    "end": at,
                    "score": score,
                    "width": width,
                }
            else:
                self._event["end"] = at
                if score > self._event["score"]:
                    self._event.update(score=score, width=width)
        return closed

    def flush(self) -> list[Detection]:
        """Close a detection still open at the end of the stream."""
        return self._close() if self._event is not None else []

    def _close(self) -> list[Detection]:
        event, self._event = self._event, None
        label = self.labels[event["index"]]
        # The first windows are mostly the silence before the stream: the middle of a word heard
        # in them can fall before 0 s, where there is no audio.
        time_s = max(0.0, (event["start"] + event["end"]) / 2)
        last = self._last_reported.get(label)
        if last is not None and time_s - last < self.config.refractory_ms / 1000.0:
            return []
        self._last_reported[label] = time_s
        return [Detection(time_s=time_s, label=label, score=event["score"], width=event["width"])]


class KeywordSpotter:
    """Audio in (any chunk size), detections out: the sliding window, the per-width models, the
    width choice and the detector together. ``hops`` records every evaluation."""

    def __init__(
        self,
        models: dict[int, KeywordModel],
        labels: Iterable[str],
        config: StreamConfig = StreamConfig(),
        *,
        sample_rate: int = 16000,
        window_samples: int = 16000,
    ) -> None:
        if config.width is not None and config.width not in models:
            raise StreamError(f"width {config.width} was not converted; available: {sorted(models, reverse=True)}")
        self.models = models
        self.config = config
        self.sample_rate = sample_rate
        self.window_samples = window_samples
        hop = config.hop_ms * sample_rate / 1000.0
        if not 0.5 < hop <= window_samples:  # rounds to no sample, or skips audio between windows
            raise StreamError(
                f"--hop-ms (StreamConfig.hop_ms) must be from one sample ({1000 / sample_rate:g} "
                f"ms) to the window ({1000 * window_samples / sample_rate:g} ms), "
                f"got {config.hop_ms:g}"
            )
        self.hop_samples = round(hop)
        self.detector = PosteriorDetector(labels, config)
        # Zeros before the stream starts, so that a word in the first second is heard too.
        self._window = np.zeros(window_samples, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._samples_seen = 0
        self.hops: list[Hop] = []
        self.selector: WidthSelector | None = None
        if config.width is None:
            self.selector = WidthSelector(
                {width: self._calibrate(model) for width, model in models.items()},
                config.budget_ms,
                patience=config.patience,
            )

    def _calibrate(self, model: KeywordModel, runs: int = 10) -> float:
        """Median milliseconds of one hop's work at this width, on this machine, now."""
        for _ in range(3):
            model(self._window)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(self._window)
            times.append((time.perf_counter() - start) * 1000.0)
        return float(np.median(times))

    @property
    def width(self) -> int:
        return self.config.width if self.selector is None else self.selector.width

    def push(self, samples: np.ndarray) -> list[Detection]:
        """Feed audio samples (float in [-1, 1]); evaluate every completed hop."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).ravel()])
        detections = []
        while len(self._pending) >= self.hop_samples:
            hop, self._pending = (
                self._pending[: self.hop_samples],
                self._pending[self.hop_samples :],
            )
            self._window = np.concatenate([self._window[self.hop_samples :], hop])
            self._samples_seen += self.hop_samples
            detections += self._evaluate()
        return detections

    def finish(self) -> list[Detection]:
        """End of stream: report a detection that is still open."""
        return self.detector.flush()

    def _evaluate(self) -> list[Detection]:
        width = self.width
        start = time.perf_counter()
        posteriors = self.models[width](self._window)
        latency_ms = (time.perf_counter() - start) * 1000.0
        centre_s = (self._samples_seen - len(self._window) / 2) / self.sample_rate
        self.hops.append(Hop(time_s=centre_s, width=width, latency_ms=latency_ms, posteriors=posteriors))
        if self.selector is not None:
            self.selector.update(latency_ms)
        return self.detector.update(centre_s, posteriors, width)


@dataclasses.dataclass(frozen=True)
class ConvertedModels:
    """The student flatbuffers of a ``bifsmn-tf convert`` output, read from its manifest."""

    directory: Path
    widths: dict[int, Path]
    labels: tuple[str, ...]
    input: str
    feature_config: FeatureConfig


def read_converted(path: str | Path) -> ConvertedModels:
    """The student flatbuffers listed by ``path`` (a manifest.json or the directory holding it).

    Raises :class:`StreamError` naming the manifest for anything in it the spotter cannot use.
    """
    path = Path(path)
    manifest_path = path / MANIFEST if path.is_dir() else path
    if not manifest_path.exists():
        raise StreamError(f"{manifest_path} not found: run `bifsmn-tf convert RUN_DIR` first")
    again = "run `bifsmn-tf convert` again"
    try:
        manifest = ConversionManifest.load(manifest_path)
    except RecordError as err:
        raise StreamError(f"{err}; {again}") from None
    try:
        feature_config = FeatureConfig.from_dict(manifest.feature_config)
    except (ConfigError, TypeError) as err:  # TypeError: a value of the wrong type compared
        raise StreamError(f"{manifest_path}: 'feature_config': {err}; {again}") from None
    students = {width: manifest_path.parent / entry.file for width, entry in manifest.students().items()}
    if not students:
        raise StreamError(f"{manifest_path}: no student flatbuffers listed; {again}")
    missing = [str(p) for p in students.values() if not p.exists()]
    if missing:
        raise StreamError(f"{manifest_path}: lists files that are missing: {missing}; {again}")
    return ConvertedModels(
        directory=manifest_path.parent,
        widths=students,
        labels=manifest.labels,
        input=manifest.input,
        feature_config=feature_config,
    )


def build_spotter(converted: ConvertedModels, config: StreamConfig = StreamConfig()) -> KeywordSpotter:
    """A :class:`KeywordSpotter` over the converted student widths (all of them for ``--width
    auto``, else the one asked for)."""
    widths = list(converted.widths) if config.width is None else [config.width]
    if config.width is not None and config.width not in converted.widths:
        raise StreamError(f"width {config.width} was not converted; available: {list(converted.widths)}")
    frontend = None
    if converted.input == "features":
        layer = build_frontend(converted.feature_config)
        frontend = lambda window: layer(window).numpy()  # noqa: E731
    models = {w: _keyword_model(converted.widths[w], converted, frontend) for w in widths}
    return KeywordSpotter(
        models,
        converted.labels,
        config,
        sample_rate=converted.feature_config.sample_rate,
        window_samples=converted.feature_config.clip_samples,
    )


def _keyword_model(
    path: Path, converted: ConvertedModels, frontend: Callable[[np.ndarray], np.ndarray] | None
) -> KeywordModel:
    """The flatbuffer at ``path``, checked whole and against the inputs and classes the
    manifest says it has: a file that does not fit would fail mid-stream instead."""
    try:
        model = KeywordModel(read_flatbuffer(path), frontend)
    except FlatbufferError as err:
        raise StreamError(str(err)) from None
    except (RuntimeError, ValueError) as err:  # LCE cannot run its ops; not one input and output
        raise StreamError(f"{path}: LCE's interpreter cannot run it ({str(err).strip()}); {CONVERT_AGAIN}") from None
    config = converted.feature_config
    expected = (config.clip_samples,) if converted.input == "audio" else (config.num_frames, config.num_features)
    classes = model.flatbuffer.interpreter.output_shapes[0][-1]
    if model.flatbuffer.input_shape != expected or classes != len(converted.labels):
        raise StreamError(
            f"{path} takes {model.flatbuffer.input_shape} and gives {classes} classes; the "
            f"manifest says {converted.input} {expected} and {len(converted.labels)} labels; "
            f"{CONVERT_AGAIN}"
        )
    return model


def spot_file(path: str | Path, spotter: KeywordSpotter) -> Iterator[Detection]:
    """Detections in a WAV file (any rate: it is resampled), yielded as the stream reaches them."""
    samples = read_wav(path, sample_rate=spotter.sample_rate, resample=True)
    step = spotter.hop_samples * 10
    for start in range(0, len(samples), step):
        yield from spotter.push(samples[start : start + step])
    # Trailing silence until the last window holds one hop of audio, as the first one does: a word
    # at the very end is heard in as many windows as one at the very start, and placed as well.
    trailing = spotter.window_samples - spotter.hop_samples
    yield from spotter.push(np.zeros(trailing, dtype=np.float32))
    yield from spotter.finish()


def spot_microphone(spotter: KeywordSpotter, *, device: int | str | None = None) -> Iterator[Detection]:
    """Detections from a live microphone until interrupted (Ctrl-C). Needs ``sounddevice``."""
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: the package is there but PortAudio is not
        raise StreamError(
            "--mic needs the optional sounddevice package: `pip install sounddevice` "
            "(and PortAudio: `sudo apt-get install libportaudio2` on Debian/Raspberry Pi OS)"
        ) from None
    blocks: queue.Queue[np.ndarray] = queue.Queue()
    with sounddevice.InputStream(
        samplerate=spotter.sample_rate,
        channels=1,
        dtype="float32",
        blocksize=spotter.hop_samples,
        device=device,
        callback=lambda data, frames, when, status: blocks.put(data[:, 0].copy()),
    ):
        while True:
            yield from spotter.push(blocks.get())


@dataclasses.dataclass(frozen=True)
class SpottingScore:
    """Detections matched against the keywords of a recording (:func:`score_detections`).

    ``match`` is the record of :func:`bifsmn_tf.detection.match_events` over the detections up to
    the recording's ``speech_seconds`` (keywords and non-keyword speech); its
    ``false_alarms_per_hour`` is per hour of non-keyword speech (``None`` without any). False
    alarms are also split by where they fall: up to ``speech_seconds``, or in the noise after it.
    ``timing_errors_s`` holds ``detection time - middle of the keyword's speech`` of every match.
    """

    match: dict[str, Any]
    timing_errors_s: list[float]
    false_alarms_in_speech: list[Detection]
    false_alarms_in_noise: list[Detection]

    @property
    def keywords(self) -> int:
        return self.match["events"]

    @property
    def found(self) -> int:
        return self.match["hits"]

    @property
    def recall(self) -> float:
        return self.match["recall"] or 0.0

    @property
    def false_alarms(self) -> int:
        return len(self.false_alarms_in_speech) + len(self.false_alarms_in_noise)

    def __str__(self) -> str:
        timing = ""
        if self.timing_errors_s:
            errors = np.asarray(self.timing_errors_s)
            timing = f", timing error mean {errors.mean() * 1000:+.0f} ms (SD {errors.std() * 1000:.0f})"
        per_hour = self.match["false_alarms_per_hour"]
        talk = "" if per_hour is None else f" ({per_hour:.1f} per hour of non-keyword speech)"
        return (
            f"recall {self.recall:.0%} ({self.found}/{self.keywords}){timing}; false alarms "
            f"{len(self.false_alarms_in_speech)} among the keywords{talk}, "
            f"{len(self.false_alarms_in_noise)} in the noise"
        )


def score_detections(
    detections: Iterable[Detection],
    events: Iterable[tuple[float, float, str]],
    speech_seconds: float,
    non_keyword_seconds: float = 0.0,
    tolerance_s: float = 0.25,
) -> SpottingScore:
    """Match detections to the keywords ``(start_s, end_s, label)`` spoken before
    ``speech_seconds`` with :func:`bifsmn_tf.detection.match_events` (a detection of the label
    from ``tolerance_s`` before the speech to ``tolerance_s`` after it; each keyword and detection
    matched once, as many matches as possible); the rest are false alarms, in speech or in the
    noise after it. ``non_keyword_seconds`` of non-keyword speech before ``speech_seconds`` make
    the denominator of false alarms per hour."""
    detections, events = list(detections), list(events)
    in_speech = [d for d in detections if d.time_s <= speech_seconds]
    # Only the detections of the speech: noise alone would otherwise count against talk.
    match = match_events(
        [(d.time_s, d.label) for d in in_speech], events, non_keyword_seconds / 3600, tolerance_s=tolerance_s
    )
    matched = dict(match["matches"])
    return SpottingScore(
        match,
        [in_speech[d].time_s - (events[e][0] + events[e][1]) / 2 for d, e in matched.items()],
        [d for i, d in enumerate(in_speech) if i not in matched],
        [d for d in detections if d.time_s > speech_seconds],
    )


def replay(hops: Iterable[Hop], labels: Iterable[str], config: StreamConfig) -> list[Detection]:
    """The detections a spotter with ``config`` makes from the posteriors of ``hops`` (recorded
    by a :class:`KeywordSpotter` at the same ``hop_ms``): threshold, smoothing and refractory
    period can be tried without running the model again."""
    hops = list(hops)
    steps = np.diff([h.time_s for h in hops])
    if steps.size and not np.allclose(steps, config.hop_ms / 1000.0, atol=1e-6):
        raise StreamError(
            f"the hops were recorded {steps.mean() * 1000:g} ms apart, the config's hop_ms is {config.hop_ms:g}"
        )
    detector = PosteriorDetector(labels, config)
    detections = []
    for hop in hops:
        detections += detector.update(hop.time_s, hop.posteriors, hop.width)
    return detections + detector.flush()


def width_summary(hops: list[Hop]) -> str:
    """How many hops ran at each width, and their median latency."""
    parts = []
    for width in sorted({h.width for h in hops}, reverse=True):
        latencies = [h.latency_ms for h in hops if h.width == width]
        parts.append(f"width {width}: {len(latencies)} hops, median {np.median(latencies):.2f} ms")
    return "; ".join(parts)
