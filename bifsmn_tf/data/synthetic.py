"""The built-in synthetic keyword set, in the Speech Commands layout.

Google Speech Commands cannot always be downloaded, so ``bifsmn-tf data synth`` speaks its words
with the speech engines of :mod:`bifsmn_tf.data.tts` and writes::

    OUT_DIR/<word>/<speaker>_nohash_0.wav      1 s, 16 kHz, mono, 16-bit; one take per speaker
    OUT_DIR/_background_noise_/<kind>.wav      long noise recordings of several colours and kinds
    OUT_DIR/validation_list.txt, testing_list.txt
    OUT_DIR/synth.json                         config, engines, and every clip's perturbations
                                               (and the takes ``check_words`` left out)

**Speakers.** ``clips_per_word`` speakers each say every word once. A speaker is an engine voice
(accent and timbre) with its own vocal-tract length, pitch, speaking rate, intonation range, room
and microphone; each take adds its own rate/pitch jitter, intonation (punctuation), loudness,
position in the second, breath, background noise at a random SNR and sometimes clipping.
A model trained on one engine's plain voices learns the engine, not the words, so the set varies
everything a real recording varies.

**Checked takes** (``check_words``, ``--check-words``): an offline recognizer of real speech
listens to each clean take before anything is added to it; a take it does not hear as its word
is spoken again, and after three takes left out. Engines say some words so that no listener
would take them for the word, and such a clip teaches a model a wrong label.

**Split by speaker.** Validation and test speakers never say anything in training; for engines
with many voices (espeak-ng, Kokoro) their base voices are also disjoint from the training ones.

**Vocal-tract length** is changed without touching pitch or duration: the engine speaks at
``rate / a`` and ``pitch / a``, and the result is resampled as if it had been recorded at
``a`` times its sample rate, which scales every formant by ``a`` and restores rate and pitch.
(Engines without a pitch control get pitch ``a``: a shorter tract, a higher voice.)

**Determinism.** Every random draw comes from a generator seeded by ``(seed, what, speaker,
word)``, so the files do not depend on ``jobs`` or on the order of work; the same seed and the
same engine versions give byte-identical files.

**Interruptions.** Work happens in ``OUT_DIR/.partial``: clips are written atomically and each
finished speaker is appended to a journal, so a rerun with the same settings resumes. At the end
the word folders, then the split lists, then ``synth.json`` are moved into ``OUT_DIR``:
``synth.json`` is written last, and a set without it is not complete.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing.connection
import os
import shutil
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from bifsmn_tf import __version__
from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.data import tts
from bifsmn_tf.data.audio import SAMPLE_RATE, read_wav, write_wav
from bifsmn_tf.data.labels import WORDS
from bifsmn_tf.data.recognizer import RecognizerError, WordRecognizer
from bifsmn_tf.fileio import OutputPathError, atomic_write_text, check_output

#: Bump whenever the same config would produce different files.
#: 2: no espeak-ng variants with breath noise (not reproducible); 3: Kokoro's share 0.25 -> 0.1.
GENERATOR_VERSION = 3
#: 400 speakers x 30 words = 12,000 clips, made in under 1.5 minutes on 2 cores with the engines
#: of a plain install (2.5 to 5 with every extra engine, by CPU: BENCHMARKS.md). Its 10,560
#: training examples a pass (9,600 clips + 10 % silence) cost a teacher epoch about 7 s and a
#: 3-width student epoch about 21 s at 1,500 examples/s per width, so a dozen epochs of each fit
#: the demo's 20 minutes. Fewer speakers learn the words worse, more hardly better: on an engine
#: it never heard, a teacher trained on 62, 124, 245 and 490 speakers of four engines read 48.5,
#: 59.0, 61.3 and 61.8 % (benchmarks/synth_scaling.py).
DEFAULT_CLIPS_PER_WORD = 400
MIN_CLIPS_PER_WORD = 3  # one training, one validation and one test speaker
#: More is a typo: 10,000 speakers of 35 words are 350,000 clips, 11 GB and hours of synthesis.
MAX_CLIPS_PER_WORD = 10_000

SYNTH_JSON = "synth.json"
PARTIAL_DIR = ".partial"
BACKGROUND_NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
SPLITS = ("training", "validation", "testing")
_PLAN_JSON = "plan.json"
_JOURNAL = "speakers.jsonl"

CLIP_SECONDS = 1.0
_CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)
#: Longest spoken word allowed, so that a breath and some silence still fit in the second.
_MAX_SPEECH_SECONDS = 0.9
#: Engines with at least this many voices get disjoint voice pools per split.
_MIN_VOICES_TO_SPLIT = 10
#: Words the babble talkers say: none of them is a Speech Commands word.
_BABBLE_WORDS = (
    "water", "people", "morning", "table", "window", "little", "number", "paper", "money",
    "coffee", "garden", "yellow", "music", "picture", "children", "station", "market", "teacher",
    "doctor", "summer", "winter", "kitchen", "letter", "family", "minute", "really", "because",
    "maybe", "about", "nothing", "something", "together", "afternoon", "weather", "problem",
    "question", "answer", "remember", "believe", "change", "the", "and", "what", "where", "when",
)  # fmt: skip
_NOISE_COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}
#: Background recordings: five noise colours and five kinds of everyday noise.
NOISE_KINDS = tuple(f"{c}_noise" for c in _NOISE_COLOURS) + ("babble", "hum", "fan", "rain", "clicks")
_INTONATIONS = (".", "?", "!", "")
_BABBLE_TALKERS = 6
#: Takes of a word with ``check_words`` before it is left out. In a probe of 16 speakers per
#: engine, a second take recovered 3-7 % of the words and a third and fourth 2-4 % together.
_CHECK_ATTEMPTS = 3

# Streams of the seeded generators, so that no two kinds of draw share one.
_PLAN, _SPEAKER, _CLIP, _BACKGROUND, _ROOM, _RETAKE = range(6)


class SynthError(RuntimeError):
    """The synthetic set cannot be made as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Perturbations(JsonConfig):
    """Ranges ``(low, high)`` and probabilities of everything the generator varies.

    Multipliers (vocal tract, pitch, rate) are drawn log-uniformly, levels in dB uniformly.
    """

    vocal_tract: tuple[float, float] = (0.88, 1.14)
    pitch: tuple[float, float] = (0.75, 1.35)
    rate: tuple[float, float] = (0.75, 1.3)
    intonation: tuple[float, float] = (0.4, 1.6)
    #: Each take's rate and pitch differ from the speaker's by up to this factor.
    take_jitter: float = 1.08
    level_dbfs: tuple[float, float] = (-36.0, -14.0)
    breath_probability: float = 0.25
    breath_db: tuple[float, float] = (-28.0, -12.0)
    noise_probability: float = 0.8
    snr_db: tuple[float, float] = (5.0, 35.0)
    noise_floor_dbfs: tuple[float, float] = (-78.0, -55.0)
    room_probability: float = 0.5
    rt60_seconds: tuple[float, float] = (0.1, 0.7)
    direct_to_reverberant_db: tuple[float, float] = (0.0, 15.0)
    microphone_probability: float = 0.8
    telephone_probability: float = 0.1
    clipping_probability: float = 0.05
    clipping_drive_db: tuple[float, float] = (2.0, 12.0)


@dataclasses.dataclass(frozen=True)
class SynthConfig(JsonConfig):
    """What ``bifsmn-tf data synth`` makes; ``jobs`` is not here because it changes nothing.

    ``engines`` empty means every installed engine; :meth:`resolve` fills it in, and the
    resolved config is what ``synth.json`` records.

    ``check_words``: an offline recognizer of real speech
    (:class:`~bifsmn_tf.data.recognizer.WordRecognizer`) listens to each clean take; a take it
    does not hear as its word is spoken again with a new rate, pitch and intonation, up to
    three times in all, and otherwise left out (``synth.json`` lists it under ``rejected``).
    Takes it hears at once are the same files as without the check.
    """

    words: str = "v1"
    clips_per_word: int = DEFAULT_CLIPS_PER_WORD
    seed: int = 0
    engines: tuple[str, ...] = ()
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    background_seconds: float = 30.0
    check_words: bool = False
    perturbations: Perturbations = Perturbations()

    def __post_init__(self) -> None:
        if self.words not in WORDS:
            raise SynthError(f"unknown word list {self.words!r}; choose one of {sorted(WORDS)}")
        if self.clips_per_word < MIN_CLIPS_PER_WORD:
            raise SynthError(
                f"clips_per_word must be at least {MIN_CLIPS_PER_WORD} (one training, one "
                f"validation and one test speaker), got {self.clips_per_word}"
            )
        if self.clips_per_word > MAX_CLIPS_PER_WORD:
            raise SynthError(
                f"clips_per_word must be at most {MAX_CLIPS_PER_WORD} (already 11 GB of clips), "
                f"got {self.clips_per_word}"
            )
        held_out = self.validation_percent + self.testing_percent
        if not (0 < self.validation_percent and 0 < self.testing_percent and held_out < 100):
            raise SynthError(
                "validation_percent and testing_percent must be positive and sum to less than 100, "
                f"got {self.validation_percent} and {self.testing_percent}"
            )
        if self.background_seconds < CLIP_SECONDS:
            raise SynthError(f"background_seconds must be at least {CLIP_SECONDS}")
        unknown = sorted(set(self.engines) - set(tts.ENGINES))
        if unknown:
            raise SynthError(f"unknown speech engine(s) {unknown}; known: {list(tts.ENGINES)}")
        if len(set(self.engines)) != len(self.engines):
            raise SynthError(f"engines named twice: {list(self.engines)}")
        if self.seed < 0:
            raise SynthError(f"seed must be at least 0, got {self.seed}")

    @property
    def word_list(self) -> tuple[str, ...]:
        return WORDS[self.words]

    def resolve(self) -> SynthConfig:
        """This config with ``engines`` set to the installed engines if it was empty."""
        if self.engines:
            return self
        installed = tts.installed_engines()
        if not installed:
            raise SynthError(f"no speech engine is installed; reinstall bifsmn-tf ({tts.EXTRA_HINT})")
        return self.replace(engines=installed)

    def split_sizes(self) -> dict[str, int]:
        """Speakers per split: at least one each, validation and test rounded."""
        n = self.clips_per_word
        validation = max(1, round(n * self.validation_percent / 100))
        testing = max(1, round(n * self.testing_percent / 100))
        return {"training": n - validation - testing, "validation": validation, "testing": testing}


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A synthetic person: engine voice plus everything that stays the same across their takes."""

    id: str
    index: int
    split: str
    engine: str
    voice: str
    vocal_tract: float
    pitch: float
    rate: float
    intonation: float
    room: dict[str, float] | None
    microphone: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- random draws ----------------------------------------------------------------------------


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


def _word_key(word: str) -> int:
    # A stable key per word, so a word's clips do not depend on which list it came from.
    return zlib.crc32(word.encode())


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    # Rounded draws: synth.json then records exactly the value that was used.
    return round(float(rng.uniform(*bounds)), 4)


def _log_uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return round(float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1])))), 4)


def plan_speakers(
    config: SynthConfig, voices: Mapping[str, Sequence[str]], shares: Mapping[str, float]
) -> list[Speaker]:
    """Every speaker of the set, from ``config`` (resolved) and each engine's voice names and
    :attr:`~bifsmn_tf.data.tts.SpeechEngine.share`.

    Speakers are split first; within each split the engines take turns in proportion to their
    share, so that every split has the same engine mix.
    Engines with many voices draw each split's voices from its own disjoint pool.
    """
    rng = _rng(config.seed, _PLAN)
    sizes = config.split_sizes()
    splits = [s for s in SPLITS for _ in range(sizes[s])]
    splits = [splits[i] for i in rng.permutation(len(splits))]
    names = list(config.engines)
    pools = {name: _voice_pools(voices[name], config, rng) for name in names}
    turns = {
        split: iter(_engine_turns(names, [shares[n] for n in names], sizes[split], int(rng.integers(len(names)))))
        for split in SPLITS
    }
    pert = config.perturbations
    speakers = []
    for index, split in enumerate(splits):
        engine = next(turns[split])
        draw = _rng(config.seed, _SPEAKER, index)
        pool = pools[engine][split]
        speakers.append(
            Speaker(
                id=f"{engine}-{index:04d}",
                index=index,
                split=split,
                engine=engine,
                voice=pool[int(draw.integers(len(pool)))],
                vocal_tract=_log_uniform(draw, pert.vocal_tract),
                pitch=_log_uniform(draw, pert.pitch),
                rate=_log_uniform(draw, pert.rate),
                intonation=_uniform(draw, pert.intonation),
                room=_draw_room(draw, pert) if draw.random() < pert.room_probability else None,
                microphone=(
                    _draw_microphone(draw, pert) if draw.random() < pert.microphone_probability else None
                ),
            )
        )
    return speakers


def _engine_turns(names: Sequence[str], shares: Sequence[float], count: int, first: int) -> list[str]:
    """``count`` turns of smooth weighted round-robin starting at engine ``first``: each engine
    gets turns in proportion to its share, spread evenly."""
    order = list(range(first, len(names))) + list(range(first))
    credit = dict.fromkeys(order, 0.0)
    turns = []
    for _ in range(count):
        for i in order:
            credit[i] += shares[i]
        chosen = max(order, key=credit.__getitem__)
        credit[chosen] -= sum(shares)
        turns.append(names[chosen])
    return turns


def _voice_pools(
    voices: Sequence[str], config: SynthConfig, rng: np.random.Generator
) -> dict[str, tuple[str, ...]]:
    voices = tuple(voices)
    if len(voices) < _MIN_VOICES_TO_SPLIT:
        return dict.fromkeys(SPLITS, voices)
    shuffled = [voices[i] for i in rng.permutation(len(voices))]
    n_val = max(1, round(len(voices) * config.validation_percent / 100))
    n_test = max(1, round(len(voices) * config.testing_percent / 100))
    return {
        "testing": tuple(shuffled[:n_test]),
        "validation": tuple(shuffled[n_test : n_test + n_val]),
        "training": tuple(shuffled[n_test + n_val :]),
    }


def _draw_room(rng: np.random.Generator, pert: Perturbations) -> dict[str, float]:
    return {
        "rt60_seconds": _uniform(rng, pert.rt60_seconds),
        "direct_to_reverberant_db": _uniform(rng, pert.direct_to_reverberant_db),
        "predelay_ms": _uniform(rng, (0.0, 15.0)),
        "tail_lowpass_hz": _log_uniform(rng, (2500.0, 7500.0)),
    }


def _draw_microphone(rng: np.random.Generator, pert: Perturbations) -> dict[str, Any]:
    if rng.random() < pert.telephone_probability:
        highpass, lowpass = 300.0, 3400.0
    else:
        highpass = _log_uniform(rng, (40.0, 250.0))
        lowpass = _log_uniform(rng, (3500.0, 7600.0)) if rng.random() < 0.6 else None
    peaks = [
        {
            "hz": _log_uniform(rng, (150.0, 6000.0)),
            "gain_db": _uniform(rng, (-9.0, 9.0)),
            "q": _uniform(rng, (0.7, 2.5)),
        }
        for _ in range(2)
    ]
    return {"highpass_hz": highpass, "lowpass_hz": lowpass, "peaks": peaks}


# --- signal processing -----------------------------------------------------------------------


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited polyphase resampling (``scipy.signal.resample_poly``), float32 out."""
    from scipy.signal import resample_poly

    if from_rate == to_rate:
        return samples.astype(np.float32)
    common = math.gcd(from_rate, to_rate)
    return resample_poly(samples, to_rate // common, from_rate // common).astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _db(x: float) -> float:
    return 10 ** (x / 20)


def trim_silence(samples: np.ndarray, rate: int, floor_db: float = -40.0) -> np.ndarray:
    """``samples`` without the leading and trailing stretches quieter than ``floor_db`` re. the
    loudest 10 ms, keeping 20 ms of margin."""
    frame = rate // 100
    n = len(samples) // frame
    if n == 0:
        return samples
    energy = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > energy.max() * _db(floor_db))
    start = max(0, (loud[0] - 2) * frame)
    end = min(len(samples), (loud[-1] + 3) * frame)
    return samples[start:end]


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density ~ f**exponent (0 white, -1 pink, -2 brown,
    +1 blue, +2 violet), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n)
    return (noise / rms(noise)).astype(np.float32)


def _butter(order: int, hz: float | Sequence[float], kind: str) -> np.ndarray:
    from scipy.signal import butter

    return butter(order, hz, btype=kind, fs=SAMPLE_RATE, output="sos")


def _peaking(hz: float, gain_db: float, q: float) -> np.ndarray:
    """One peaking-EQ biquad (RBJ audio-EQ cookbook) as a second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * hz / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def microphone_response(microphone: dict[str, Any]) -> np.ndarray:
    """The second-order sections of a microphone drawn by the planner: high-pass, optional
    low-pass (band-limiting), two resonances."""
    sections = [_butter(2, microphone["highpass_hz"], "highpass")]
    if microphone["lowpass_hz"] is not None:
        sections.append(_butter(4, microphone["lowpass_hz"], "lowpass"))
    sections += [_peaking(p["hz"], p["gain_db"], p["q"]) for p in microphone["peaks"]]
    return np.concatenate(sections)


def room_impulse_response(room: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """A simulated room: direct path, a few early reflections, then exponentially decaying,
    low-passed noise that falls by 60 dB in ``rt60_seconds``; unit direct path."""
    from scipy.signal import sosfilt

    rt60 = room["rt60_seconds"]
    n = int(min(1.2 * rt60, CLIP_SECONDS) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = sosfilt(_butter(2, room["tail_lowpass_hz"], "lowpass"), rng.standard_normal(n))
    tail *= 10 ** (-3 * t / rt60)
    for _ in range(6):
        at = int(rng.uniform(0.002, 0.04) * SAMPLE_RATE)
        tail[at] += rng.choice((-1, 1)) * rng.uniform(0.2, 0.6)
    reverberant = rms(tail) * math.sqrt(n)
    tail *= 1.0 / (reverberant * _db(room["direct_to_reverberant_db"]))
    delay = int(room["predelay_ms"] * SAMPLE_RATE / 1000)
    response = np.zeros(n + delay)
    response[0] = 1.0
    response[delay:] += tail
    return response


def _bursts(n: int, rate_hz: float, length_s: tuple[float, float], band_hz: tuple[float, float],
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Sparse decaying noise bursts (drops, clicks) at Poisson times, in four lengths."""
    from scipy.signal import fftconvolve, sosfilt

    out = np.zeros(n)
    for seconds in np.linspace(*length_s, 4):
        impulses = (rng.random(n) < rate_hz / 4 / SAMPLE_RATE) * rng.exponential(1.0, n)
        length = int(seconds * SAMPLE_RATE)
        shape = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
        out += fftconvolve(impulses, shape)[:n]
    return sosfilt(_butter(2, band_hz, "bandpass"), out)


def background_noise(
    kind: str, seconds: float, rng: np.random.Generator, talkers: Sequence[tuple[tts.SpeechEngine, str]] = ()
) -> np.ndarray:
    """One long noise recording of ``kind`` (see :data:`NOISE_KINDS`), peak-normalised to 0.5.

    ``babble`` needs ``talkers``: (engine, voice) pairs that speak non-keyword phrases over
    each other.
    """
    from scipy.signal import sosfilt

    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind.endswith("_noise"):
        noise = coloured_noise(n, _NOISE_COLOURS[kind.removesuffix("_noise")], rng)
    elif kind == "babble":
        if not talkers:
            raise ValueError("babble needs talkers")
        noise = np.zeros(n)
        for engine, voice in talkers:
            noise += _talker_stream(engine, voice, n, rng)
    elif kind == "hum":
        mains = rng.choice((50.0, 60.0)) * (1 + 0.002 * np.sin(2 * np.pi * 0.1 * t))
        phase = 2 * np.pi * np.cumsum(mains) / SAMPLE_RATE
        noise = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k ** rng.uniform(0.5, 1.5) for k in range(1, 12))
        noise = noise / rms(noise) + 0.1 * coloured_noise(n, -1.0, rng)
    elif kind == "fan":
        blade = rng.uniform(80.0, 220.0)
        body = sosfilt(_butter(2, rng.uniform(600.0, 2000.0), "lowpass"), coloured_noise(n, -1.0, rng))
        tone = sum(np.sin(2 * np.pi * k * blade * t) / k for k in range(1, 4))
        swell = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.8) * t)
        noise = (body / rms(body) + 0.3 * tone / rms(tone)) * swell
    elif kind == "rain":
        drops = _bursts(n, rng.uniform(300.0, 2000.0), (0.001, 0.004), (1000.0, 7000.0), rng)
        noise = drops / rms(drops) + 0.3 * coloured_noise(n, -1.0, rng)
    elif kind == "clicks":
        clicks = _bursts(n, rng.uniform(2.0, 8.0), (0.005, 0.03), (800.0, 6000.0), rng)
        noise = clicks / max(np.abs(clicks).max(), 1e-9) + 0.01 * coloured_noise(n, -1.0, rng)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")
    return (0.5 * noise / np.abs(noise).max()).astype(np.float32)


def speak(
    engine: tts.SpeechEngine, text: str, voice: str, *, rate: float = 1.0, pitch: float = 1.0,
    intonation: float = 1.0, vocal_tract: float = 1.0, max_seconds: float = _MAX_SPEECH_SECONDS,
) -> tuple[np.ndarray, dict]:  # fmt: skip
    """``text`` spoken at 16 kHz with its formants scaled by ``vocal_tract``, silence trimmed.

    The engine speaks at ``rate / vocal_tract`` (and ``pitch / vocal_tract`` if it controls
    pitch) and the result is resampled as if recorded at ``vocal_tract`` times its rate, which
    restores rate and pitch and scales the spectral envelope. A take longer than ``max_seconds``
    is spoken again, faster. Returns float64 samples and the settings that took effect (``pitch``
    and ``vocal_tract`` as realised; ``intonation`` None where the engine has no such control).
    """
    for _ in range(3):
        engine_pitch = pitch / vocal_tract if "pitch" in engine.controls else 1.0
        samples, native_rate = engine.synthesize(text, voice, rate / vocal_tract, engine_pitch, intonation)
        # Quantised to 100 Hz so that the resampling ratio stays a small fraction.
        warped_rate = int(round(native_rate * vocal_tract / 100) * 100)
        speech = trim_silence(resample(samples, warped_rate), SAMPLE_RATE).astype(np.float64)
        seconds = len(speech) / SAMPLE_RATE
        if seconds <= max_seconds:
            break
        rate = round(rate * seconds / (0.95 * max_seconds), 4)
    realised_tract = warped_rate / native_rate
    return speech[: int(max_seconds * SAMPLE_RATE)], {
        "rate": rate,
        "pitch": round(engine_pitch * realised_tract, 4),
        "vocal_tract": round(realised_tract, 4),
        "intonation": intonation if "intonation" in engine.controls else None,
    }


def _talker_stream(engine: tts.SpeechEngine, voice: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One babble talker: a few phrases, repeated in random order with pauses, over ``n`` samples."""
    phrases = []
    for _ in range(6):
        text = " ".join(rng.choice(_BABBLE_WORDS, size=int(rng.integers(2, 5))))
        rate, pitch = rng.uniform(0.9, 1.3), rng.uniform(0.8, 1.25)
        phrases.append(speak(engine, text, voice, rate=rate, pitch=pitch, max_seconds=10.0)[0])
    stream = np.zeros(n)
    at = int(rng.integers(0, SAMPLE_RATE))
    while at < n:
        phrase = phrases[int(rng.integers(len(phrases)))]
        end = min(n, at + len(phrase))
        stream[at:end] += phrase[: end - at] / max(rms(phrase), 1e-9)
        at = end + int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
    return stream


# --- clips -----------------------------------------------------------------------------------


class ClipRenderer:
    """Renders a speaker's takes; holds the loaded engines and the background recordings.

    One take: synthesis with vocal-tract warping -> breath and placement in the second -> room
    -> background noise at an SNR -> microphone -> level -> electrical noise floor -> clipping.
    """

    def __init__(self, config: SynthConfig, noise_bank: Mapping[str, np.ndarray]) -> None:
        self.config = config
        self.noise_bank = noise_bank
        self.engines = {name: tts.load_engine(name) for name in config.engines}
        self.recognizer = WordRecognizer(config.word_list) if config.check_words else None

    def render_speaker(
        self, speaker: Speaker, words: Iterable[str]
    ) -> Iterable[tuple[str, np.ndarray | None, dict]]:
        """``(word, samples (16000,) float32 in [-1, 1], record)`` for each of ``words``;
        samples None for a take that ``check_words`` left out."""
        room = None
        if speaker.room is not None:
            room = room_impulse_response(speaker.room, _rng(self.config.seed, _ROOM, speaker.index))
        microphone = None if speaker.microphone is None else microphone_response(speaker.microphone)
        for word in words:
            rng = _rng(self.config.seed, _CLIP, speaker.index, _word_key(word))
            samples, record = self._take(speaker, word, rng, room, microphone)
            yield word, samples, record

    def _take(self, speaker: Speaker, word: str, rng: np.random.Generator,
              room: np.ndarray | None, microphone: np.ndarray | None) -> tuple[np.ndarray | None, dict]:  # fmt: skip
        from scipy.signal import fftconvolve, sosfilt

        pert = self.config.perturbations
        speech, synthesis = self._speak(speaker, word, rng)
        who = {"engine": speaker.engine, "voice": speaker.voice, "speaker": speaker.id, "split": speaker.split}
        if speech is None:
            return None, {**who, **synthesis}
        canvas, active, placement = self._place(speech / max(rms(speech), 1e-9), rng)
        if room is not None:
            canvas = fftconvolve(canvas, room)[:_CLIP_SAMPLES]
        noise = None
        if rng.random() < pert.noise_probability:
            crop, noise = self._noise_crop(rng)
            noise["snr_db"] = _uniform(rng, pert.snr_db)
            canvas = canvas + crop * rms(canvas[active]) / _db(noise["snr_db"])
        if microphone is not None:
            canvas = sosfilt(microphone, canvas)
        samples, finish = self._finish(canvas, active, rng)
        record = {
            **who,
            **synthesis,
            **placement,
            "room": speaker.room,
            "noise": noise,
            "microphone": speaker.microphone,
            **finish,
        }
        return samples, record

    def _speak(self, speaker: Speaker, word: str, rng: np.random.Generator) -> tuple[np.ndarray | None, dict]:
        """The clean take with this take's rate and pitch jitter and intonation, and its settings
        (``check``: what the recognizer heard at each attempt); None if it never heard the word."""
        pert = self.config.perturbations
        jitter = (1 / pert.take_jitter, pert.take_jitter)
        heard = []
        for attempt in range(_CHECK_ATTEMPTS if self.recognizer else 1):
            # The first take draws from the clip's own generator, as without the check.
            draw = rng if attempt == 0 else _rng(self.config.seed, _RETAKE, speaker.index, _word_key(word), attempt)
            rate = round(speaker.rate * _log_uniform(draw, jitter), 4)
            pitch = round(speaker.pitch * _log_uniform(draw, jitter), 4)
            text = word + _INTONATIONS[int(draw.integers(len(_INTONATIONS)))]
            speech, synthesis = speak(
                self.engines[speaker.engine], text, speaker.voice, rate=rate, pitch=pitch,
                intonation=speaker.intonation, vocal_tract=speaker.vocal_tract,
            )
            settings = {"text": text, **synthesis}
            if self.recognizer is None:
                return speech, settings
            heard.append(self.recognizer(speech))
            if heard[-1] == word:
                return speech, {**settings, "check": heard}
        return None, {**settings, "check": heard}

    def _place(self, speech: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, slice, dict]:
        """The one-second canvas with the speech (and maybe a breath) at a random position."""
        pert = self.config.perturbations
        breath = None
        parts = [speech]
        if rng.random() < pert.breath_probability:
            breath = {
                "position": "before" if rng.random() < 0.5 else "after",
                "seconds": _uniform(rng, (0.15, 0.35)),
                "gap_seconds": _uniform(rng, (0.03, 0.2)),
                "level_db": _uniform(rng, pert.breath_db),
            }
            sound = _breath(breath["seconds"], rng) * _db(breath["level_db"])
            gap = np.zeros(int(breath["gap_seconds"] * SAMPLE_RATE))
            parts = [sound, gap, speech] if breath["position"] == "before" else [speech, gap, sound]
            if sum(len(p) for p in parts) > _CLIP_SAMPLES:
                parts, breath = [speech], None
        segment = np.concatenate(parts)
        onset = int(rng.integers(0, _CLIP_SAMPLES - len(segment) + 1))
        canvas = np.zeros(_CLIP_SAMPLES)
        canvas[onset : onset + len(segment)] = segment
        start = onset + len(segment) - len(speech) if breath and breath["position"] == "before" else onset
        return canvas, slice(start, start + len(speech)), {
            "speech_seconds": round(len(speech) / SAMPLE_RATE, 4),
            "onset_seconds": round(start / SAMPLE_RATE, 4),
            "breath": breath,
        }

    def _noise_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A one-second stretch of a background recording, unit RMS, and where it came from."""
        kinds = sorted(self.noise_bank)
        kind = kinds[int(rng.integers(len(kinds)))]
        recording = self.noise_bank[kind]
        offset = int(rng.integers(0, len(recording) - _CLIP_SAMPLES + 1))
        crop = recording[offset : offset + _CLIP_SAMPLES].astype(np.float64)
        return crop / max(rms(crop), 1e-9), {"kind": kind, "offset_samples": offset}

    def _finish(self, samples: np.ndarray, active: slice, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Set the level of the speech, add the electrical noise floor, maybe clip."""
        pert = self.config.perturbations
        peak = max(np.abs(samples).max(), 1e-9)
        clipping = None
        if rng.random() < pert.clipping_probability:
            clipping = {"drive_db": _uniform(rng, pert.clipping_drive_db), "soft": bool(rng.random() < 0.5)}
            gain = _db(clipping["drive_db"]) / peak
        else:
            # A take without a clipping draw must not clip: a loud draw is turned down instead.
            gain = min(_db(_uniform(rng, pert.level_dbfs)) / max(rms(samples[active]), 1e-9), 0.98 / peak)
        samples = samples * gain
        crop, floor = self._noise_crop(rng)
        floor["level_dbfs"] = _uniform(rng, pert.noise_floor_dbfs)
        samples = samples + crop * _db(floor["level_dbfs"])
        if clipping is not None:
            samples = np.tanh(samples) if clipping["soft"] else np.clip(samples, -1.0, 1.0)
        return samples.astype(np.float32), {
            "level_dbfs": round(20 * math.log10(max(rms(samples[active]), 1e-9)), 2),
            "noise_floor": floor,
            "clipping": clipping,
        }


def _breath(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """An in- or out-breath: band-passed noise under a quick-rise, slow-fall envelope, unit RMS."""
    from scipy.signal import sosfilt

    n = int(seconds * SAMPLE_RATE)
    band = (rng.uniform(300, 700), rng.uniform(2500, 5000))
    noise = sosfilt(_butter(2, band, "bandpass"), rng.standard_normal(n))
    rise = int(n * rng.uniform(0.2, 0.4))
    envelope = np.concatenate(
        [np.sin(np.linspace(0, np.pi / 2, rise)) ** 2, np.cos(np.linspace(0, np.pi / 2, n - rise)) ** 2]
    )
    breath = noise * envelope
    return breath / max(rms(breath), 1e-9)


# --- the set on disk -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` did: ``status`` is ``created``, ``resumed`` or ``already complete``."""

    root: Path
    status: str
    engines: tuple[str, ...]
    counts: dict[str, int]


def default_jobs() -> int:
    """Every core this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def clip_path(word: str, speaker: Speaker) -> str:
    """``word/<speaker>_nohash_0.wav``, relative to the dataset root."""
    return f"{word}/{speaker.id}_nohash_0.wav"


def generate(
    out_dir: str | Path, config: SynthConfig = SynthConfig(), jobs: int | None = None, progress: bool = True
) -> SynthResult:
    """Make the synthetic set of ``config`` in ``out_dir``, or resume or confirm it there.

    ``out_dir`` must be new, empty, or a set (complete or interrupted) made by this function;
    an interrupted run with other settings is discarded. Raises :class:`SynthError` naming
    what is wrong (engine not installed or failing, directory not writable or holding
    something else) before anything is written.

    Speech is synthesized only in spawned worker processes, ``jobs`` of them but at most one per
    core (:func:`default_jobs`; each holds its own engines, and a typo of 400 would exhaust the
    memory): the engines' native state and memory (Kokoro: about 1 GB) never enter the calling
    process, which may be training a model.

    A write that fails (a full disk) raises :class:`SynthError` naming ``out_dir``; the speakers
    finished so far are kept, and a rerun resumes.
    """
    out_dir = Path(out_dir)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise SynthError(f"jobs must be at least 1, got {jobs}")
    config = config.resolve()
    try:  # before the workers: a pool that cannot write wastes their start-up
        check_output(out_dir, directory=True, what="OUT_DIR")
    except OutputPathError as err:
        raise SynthError(str(err)) from None
    # "spawn": the caller may have started threads (TensorFlow), which fork does not survive.
    pool = ProcessPoolExecutor(
        min(jobs, default_jobs(), config.clips_per_word), mp_context=get_context("spawn"),
        initializer=_start_worker, initargs=(config.to_dict(),),
    )  # fmt: skip
    try:
        try:
            engines = pool.submit(_describe_engines).result()
        except (tts.EngineError, RecognizerError) as err:
            raise SynthError(str(err)) from None
        plan = {
            "generator_version": GENERATOR_VERSION,
            "config": config.to_dict(),
            "engines": {name: e["description"] for name, e in engines.items()},
        }
        status = _prepare(out_dir, plan)
        partial = out_dir / PARTIAL_DIR
        if status != "already complete" and not (partial / SYNTH_JSON).exists():
            speakers = plan_speakers(
                config,
                {name: e["voices"] for name, e in engines.items()},
                {name: e["description"]["share"] for name, e in engines.items()},
            )
            try:
                _write_background(pool, partial, config, speakers)
                clips, rejected = _render(pool, partial, config, speakers, progress)
                _write_manifest(partial, plan, speakers, clips, rejected)
            except OSError as err:  # raised here or in a worker
                raise SynthError(
                    f"{out_dir}: cannot write there ({err.strerror or err}); make room (or mend the "
                    "directory) and run the same command again: it resumes"
                ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if status != "already complete":
        _move_into_place(out_dir, config)
    manifest = json.loads((out_dir / SYNTH_JSON).read_text())
    return SynthResult(out_dir, status, tuple(config.engines), manifest["counts"])


def _prepare(out_dir: Path, plan: dict) -> str:
    """Check ``out_dir`` and open ``.partial`` in it; returns the run's status."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir}: exists and is not a directory")
    partial = out_dir / PARTIAL_DIR
    if (out_dir / SYNTH_JSON).is_file():
        made = _with_defaults(_read_json(out_dir / SYNTH_JSON))
        if {k: made.get(k) for k in plan} != plan:
            raise SynthError(
                f"{out_dir}: already holds a synthetic set made with other settings or engine "
                f"versions ({_difference(made, plan)}); choose another OUT_DIR or delete this one"
            )
        if partial.exists():  # interrupted after the manifest was moved: only tidying is left
            shutil.rmtree(partial)
        return "already complete"
    if (partial / _PLAN_JSON).is_file():
        if _read_json(partial / _PLAN_JSON) == plan:
            return "resumed"
        if any(p.name != PARTIAL_DIR for p in out_dir.iterdir()):
            raise SynthError(
                f"{out_dir}: holds an interrupted synthetic set made with other settings, and "
                "other files; choose another OUT_DIR or delete this one"
            )
        shutil.rmtree(partial)
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        names = sorted(p.name for p in out_dir.iterdir())
        raise SynthError(
            f"{out_dir}: not empty ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}) and "
            "not a synthetic set; synth writes only into a new or empty directory"
        )
    existed = out_dir.exists()
    try:
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_text(partial / _PLAN_JSON, json.dumps(plan, indent=1, sort_keys=True) + "\n")
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise SynthError(f"{out_dir}: cannot write there ({err.strerror or err})") from None
    return "created"


def _with_defaults(made: dict) -> dict:
    """``made`` with its config completed by the defaults of settings added since it was made."""
    try:
        return {**made, "config": SynthConfig.from_dict(made["config"]).to_dict()}
    except (KeyError, TypeError, ConfigError, SynthError):
        return made  # not a config of ours: it compares unequal as it is


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SynthError(f"{path}: unreadable ({err}); delete the directory and run again") from None


def _difference(made: dict, plan: dict) -> str:
    config_made, config_now = made.get("config", {}), plan["config"]
    keys = sorted(k for k in config_now if config_made.get(k) != config_now[k])
    if made.get("generator_version") != plan["generator_version"]:
        keys.append("generator_version")
    if made.get("engines") != plan["engines"]:
        keys.append("engines")
    return "differs in " + ", ".join(keys)


def _write_background(pool: ProcessPoolExecutor, partial: Path, config: SynthConfig, speakers: Sequence[Speaker]) -> None:
    """Make the background recordings that are not on disk yet (one worker task per kind).

    Babble talkers are the first training speakers, so no held-out voice is heard in training.
    """
    training = [s for s in speakers if s.split == "training"]
    talkers = [(s.engine, s.voice) for s in (training * _BABBLE_TALKERS)[:_BABBLE_TALKERS]]
    missing = [k for k in NOISE_KINDS if not (partial / BACKGROUND_NOISE_DIR / f"{k}.wav").is_file()]
    recordings = [pool.submit(_make_background, kind, talkers) for kind in missing]
    for kind, recording in zip(missing, recordings):
        write_wav(partial / BACKGROUND_NOISE_DIR / f"{kind}.wav", recording.result())


def _render(
    pool: ProcessPoolExecutor, partial: Path, config: SynthConfig, speakers: Sequence[Speaker], progress: bool
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Render every speaker not yet in the journal; returns the record of every clip written and
    of every take left out, by path."""
    from tqdm import tqdm

    journal = partial / _JOURNAL
    done = _read_journal(journal, partial)
    clips = {path: record for entry in done.values() for path, record in entry["clips"].items()}
    rejected = {path: record for entry in done.values() for path, record in entry["rejected"].items()}
    todo = [s for s in speakers if s.id not in done]
    total = len(speakers) * len(config.word_list)
    with (
        tqdm(total=total, initial=len(clips) + len(rejected), unit="clip", desc="synth", disable=not progress) as bar,
        open(journal, "a", encoding="utf-8") as log,
    ):
        for future in as_completed([pool.submit(_render_one_speaker, s, partial) for s in todo]):
            entry = future.result()
            log.write(json.dumps(entry, sort_keys=True) + "\n")
            log.flush()
            clips.update(entry["clips"])
            rejected.update(entry["rejected"])
            bar.update(len(entry["clips"]) + len(entry["rejected"]))
    return clips, rejected


def _read_journal(journal: Path, partial: Path) -> dict[str, dict]:
    """Speakers finished by an earlier run, by id: journal lines whose every clip is on disk.

    Also removes the temporary files of writes that a killed run left half done.
    """
    for stray in partial.glob("*/.*.tmp*"):
        stray.unlink()
    done = {}
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed run may be cut short
            if all((partial / path).is_file() for path in entry["clips"]):
                done[entry["speaker"]] = entry
    return done


# --- worker processes ------------------------------------------------------------------------

_worker_config: SynthConfig | None = None


def _start_worker(config: dict) -> None:
    global _worker_config
    # Before the worker's heap has a history: Pico's output depends on it otherwise.
    tts.zeroed_large_allocations()
    _worker_config = SynthConfig.from_dict(config)
    # A worker whose parent was killed would wait for work forever: it holds its own task
    # queue's write end, so the queue never reports end of file.
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def _describe_engines() -> dict[str, dict]:
    """Load every engine of the config: what synth.json records, and the voice names.
    Loads the recognizer too if the config checks words, so that it fails before any work."""
    if _worker_config.check_words:
        WordRecognizer(_worker_config.word_list)
    engines = {name: tts.load_engine(name) for name in _worker_config.engines}
    return {name: {"description": e.describe(), "voices": e.voices()} for name, e in engines.items()}


def _make_background(kind: str, talkers: Sequence[tuple[str, str]]) -> np.ndarray:
    config = _worker_config
    rng = _rng(config.seed, _BACKGROUND, NOISE_KINDS.index(kind))
    voices = [(tts.load_engine(engine), voice) for engine, voice in talkers] if kind == "babble" else []
    return background_noise(kind, config.background_seconds, rng, voices)


@lru_cache(maxsize=1)
def _renderer(partial: Path) -> ClipRenderer:
    # Clips mix in crops of the recordings as written, so a resumed run hears the same noise.
    bank = {k: read_wav(partial / BACKGROUND_NOISE_DIR / f"{k}.wav") for k in NOISE_KINDS}
    return ClipRenderer(_worker_config, bank)


def _render_one_speaker(speaker: Speaker, partial: Path) -> dict[str, Any]:
    """The speaker's journal entry: its id, and its clips' and left-out takes' records by path."""
    renderer = _renderer(partial)
    entry: dict[str, Any] = {"speaker": speaker.id, "clips": {}, "rejected": {}}
    for word, samples, record in renderer.render_speaker(speaker, renderer.config.word_list):
        path = clip_path(word, speaker)
        if samples is None:
            entry["rejected"][path] = record
        else:
            write_wav(partial / path, samples)
            entry["clips"][path] = record
    return entry


# --- manifest ----------------------------------------------------------------------------------


def _write_manifest(
    partial: Path, plan: dict, speakers: Sequence[Speaker], clips: dict[str, dict], rejected: dict[str, dict]
) -> None:
    """The split lists and synth.json, inside ``.partial`` until everything is moved."""
    by_split = {s: sorted(p for p, r in clips.items() if r["split"] == s) for s in SPLITS}
    atomic_write_text(partial / VALIDATION_LIST, "".join(f"{p}\n" for p in by_split["validation"]))
    atomic_write_text(partial / TESTING_LIST, "".join(f"{p}\n" for p in by_split["testing"]))
    seconds = plan["config"]["background_seconds"]
    manifest = {
        **plan,
        "generator": f"bifsmn_tf.data.synthetic (bifsmn-tf {__version__})",
        "complete": True,
        "counts": {
            "clips": len(clips), **{s: len(by_split[s]) for s in SPLITS}, "speakers": len(speakers),
            "rejected": len(rejected),
        },
        "background_noise": {kind: {"file": f"{BACKGROUND_NOISE_DIR}/{kind}.wav", "seconds": seconds} for kind in NOISE_KINDS},
        "speakers": {s.id: s.to_dict() for s in speakers},
        "clips": dict(sorted(clips.items())),
        "rejected": dict(sorted(rejected.items())),
    }
    atomic_write_text(partial / SYNTH_JSON, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _move_into_place(out_dir: Path, config: SynthConfig) -> None:
    """Word folders and noise first, then the lists, then synth.json: each state on the way is
    either incomplete without lists or complete but for synth.json, which a rerun adds."""
    partial = out_dir / PARTIAL_DIR
    for name in (*config.word_list, BACKGROUND_NOISE_DIR, VALIDATION_LIST, TESTING_LIST, SYNTH_JSON):
        if (partial / name).exists():
            os.replace(partial / name, out_dir / name)
    shutil.rmtree(partial)
