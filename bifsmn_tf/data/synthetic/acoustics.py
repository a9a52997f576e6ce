"""The sound: a speech engine's take through a vocal tract, rooms, microphones, breaths and noises.

**Vocal-tract length** is changed without touching pitch or duration (:func:`speak`): the engine
speaks at ``rate / a`` and ``pitch / a``, and the result is resampled as if it had been recorded
at ``a`` times its sample rate, which scales every formant by ``a`` and restores rate and pitch.
(Engines without a pitch control get pitch ``a``: a shorter tract, a higher voice.)

Everything here is a function of its arguments and of the generator it is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE
from bifsmn_tf.data.run_ons import speech_span
from bifsmn_tf.data.speech_commands import CLIP_SECONDS
from bifsmn_tf.data.tts_engine import SpeechEngine

#: Longest spoken word allowed, so that a breath and some silence still fit in the second.
MAX_SPEECH_SECONDS = 0.9
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


# --- levels and filters ----------------------------------------------------------------------


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def db_gain(db: float) -> float:
    """The amplitude factor of a level change of ``db`` decibels."""
    return 10 ** (db / 20)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited polyphase resampling (``scipy.signal.resample_poly``), float32 out."""
    from scipy.signal import resample_poly

    if from_rate == to_rate:
        return samples.astype(np.float32)
    common = math.gcd(from_rate, to_rate)
    return resample_poly(samples, to_rate // common, from_rate // common).astype(np.float32)


def trim_silence(samples: np.ndarray, rate: int, floor_db: float = -40.0) -> np.ndarray:
    """``samples`` without the leading and trailing stretches quieter than ``floor_db`` re. the
    loudest 10 ms (:func:`~bifsmn_tf.data.run_ons.speech_span`), keeping 20 ms of margin."""
    start, stop = speech_span(samples, rate, floor_db)
    margin = 2 * (rate // 100)
    return samples[max(0, start - margin) : min(len(samples), stop + margin)]


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


# --- speakers' rooms and microphones ---------------------------------------------------------


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
    tail *= 1.0 / (reverberant * db_gain(room["direct_to_reverberant_db"]))
    delay = int(room["predelay_ms"] * SAMPLE_RATE / 1000)
    response = np.zeros(n + delay)
    response[0] = 1.0
    response[delay:] += tail
    return response


def breath(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """An in- or out-breath: band-passed noise under a quick-rise, slow-fall envelope, unit RMS."""
    from scipy.signal import sosfilt

    n = int(seconds * SAMPLE_RATE)
    band = (rng.uniform(300, 700), rng.uniform(2500, 5000))
    noise = sosfilt(_butter(2, band, "bandpass"), rng.standard_normal(n))
    rise = int(n * rng.uniform(0.2, 0.4))
    envelope = np.concatenate(
        [np.sin(np.linspace(0, np.pi / 2, rise)) ** 2, np.cos(np.linspace(0, np.pi / 2, n - rise)) ** 2]
    )
    sound = noise * envelope
    return sound / max(rms(sound), 1e-9)


# --- speech ------------------------------------------------------------------------------------


def speak(
    engine: SpeechEngine,
    text: str,
    voice: str,
    *,
    rate: float = 1.0,
    pitch: float = 1.0,
    intonation: float = 1.0,
    vocal_tract: float = 1.0,
    max_seconds: float = MAX_SPEECH_SECONDS,
) -> tuple[np.ndarray, dict]:
    """``text`` spoken at 16 kHz with its formants scaled by ``vocal_tract``, silence trimmed.

    The engine speaks at ``rate / vocal_tract`` (and ``pitch / vocal_tract`` if it controls
    pitch) and the result is resampled as if recorded at ``vocal_tract`` times its rate, which
    restores rate and pitch and scales the spectral envelope. A take longer than ``max_seconds``
    is spoken again, faster.

    Args:
        engine: A loaded speech engine.
        text: What it says.
        voice: One of the engine's voices.
        rate: Speaking-rate multiplier.
        pitch: Pitch multiplier.
        intonation: Intonation range, for engines that control it.
        vocal_tract: Formant scale.
        max_seconds: The longest take kept (a longer one is cut after the retries).

    Returns:
        Float64 samples, and the settings that took effect (``pitch`` and ``vocal_tract`` as
        realised; ``intonation`` None where the engine has no such control).
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


# --- background recordings ---------------------------------------------------------------------


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density ~ f**exponent (0 white, -1 pink, -2 brown,
    +1 blue, +2 violet), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n)
    return (noise / rms(noise)).astype(np.float32)


def background_noise(
    kind: str, seconds: float, rng: np.random.Generator, talkers: Sequence[tuple[SpeechEngine, str]] = ()
) -> np.ndarray:
    """One long noise recording of ``kind``, peak-normalised to 0.5.

    Args:
        kind: One of :data:`NOISE_KINDS`.
        seconds: Its length.
        rng: Where its randomness comes from.
        talkers: ``(engine, voice)`` pairs that speak non-keyword phrases over each other, for
            ``babble``.

    Returns:
        Float32 samples at 16 kHz.

    Raises:
        ValueError: An unknown ``kind``, or ``babble`` without talkers.
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


def _bursts(
    n: int, rate_hz: float, length_s: tuple[float, float], band_hz: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Sparse decaying noise bursts (drops, clicks) at Poisson times, in four lengths."""
    from scipy.signal import fftconvolve, sosfilt

    out = np.zeros(n)
    for seconds in np.linspace(*length_s, 4):
        impulses = (rng.random(n) < rate_hz / 4 / SAMPLE_RATE) * rng.exponential(1.0, n)
        length = int(seconds * SAMPLE_RATE)
        shape = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5))
        out += fftconvolve(impulses, shape)[:n]
    return sosfilt(_butter(2, band_hz, "bandpass"), out)


def _talker_stream(engine: SpeechEngine, voice: str, n: int, rng: np.random.Generator) -> np.ndarray:
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
