"""Speech engine adapters: voices, output format, reproducibility, rate and pitch controls."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bifsmn_tf.data import tts, tts_native, tts_onnx
from bifsmn_tf.data.synthetic import trim_silence
from bifsmn_tf.data.tts_engine import EngineError

ENGINES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            bool(cls.missing_distributions()), reason=f"{name} is not installed ({tts.EXTRA_HINT})"
        ),
    )
    for name, cls in tts.ENGINES.items()
]
NATIVE_RATES = {"espeak": 22050, "pico": 16000, "piper": 22050, "hibari": 24000, "kokoro": 24000}


def fundamental_hz(samples: np.ndarray, rate: int) -> float:
    """Median F0 of the voiced 40 ms frames, by autocorrelation between 70 and 400 Hz."""
    frame = int(0.04 * rate)
    lags = np.arange(rate // 400, rate // 70)
    loudest = max(np.sqrt(np.mean(samples[i : i + frame] ** 2)) for i in range(0, len(samples) - frame, frame))
    estimates = []
    for start in range(0, len(samples) - frame - lags[-1], frame // 2):
        x = samples[start : start + frame]
        if np.sqrt(np.mean(x**2)) < 0.3 * loudest:
            continue
        scores = [np.dot(x, samples[start + lag : start + lag + frame]) for lag in lags]
        estimates.append(rate / lags[int(np.argmax(scores))])
    return float(np.median(estimates))


#: py-nanotts 0.1.1 hands Pico an uninitialised work area; in a full test run (a process with a
#: long heap history) the same call gave other samples. Known bug, not yet fixed: an xfail so
#: that it stays visible and turns into a pass when it is.
PICO_UNINITIALISED_MEMORY = pytest.mark.xfail(
    reason="Pico reads uninitialised memory: output can depend on the process's heap history",
    strict=False,
)
REPRODUCIBILITY_CASES = [
    pytest.param(*p.values, marks=[*p.marks, PICO_UNINITIALISED_MEMORY]) if p.values[0] == "pico" else p
    for p in ENGINES
]


@pytest.mark.parametrize("name", REPRODUCIBILITY_CASES)
def test_engine_speaks_reproducibly(name: str):
    engine = tts.load_engine(name)
    voices = engine.voices()
    assert voices and len(set(voices)) == len(voices)
    samples, rate = engine.synthesize("yes.", voices[0])
    assert rate == NATIVE_RATES[name]
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert np.abs(samples).max() <= 1.0 and np.sqrt(np.mean(samples**2)) > 0.01
    # Other speech in between must not change the next call's samples (espeak-ng and Pico keep
    # state across calls unless the adapter resets it).
    engine.synthesize("something else entirely, at another pace", voices[-1], rate=1.3, pitch=1.2)
    again, _ = engine.synthesize("yes.", voices[0])
    assert np.array_equal(samples, again)


@pytest.mark.parametrize("name", ENGINES)
def test_rate_sets_the_speaking_rate(name: str):
    engine = tts.load_engine(name)
    voice = engine.voices()[0]
    slow, rate = engine.synthesize("seven", voice, rate=0.7)
    fast, _ = engine.synthesize("seven", voice, rate=1.4)
    assert len(trim_silence(fast, rate)) < 0.8 * len(trim_silence(slow, rate))


@pytest.mark.parametrize("name", [p for p in ENGINES if "pitch" in tts.ENGINES[p.values[0]].controls])
def test_pitch_sets_the_fundamental(name: str):
    engine = tts.load_engine(name)
    voice = engine.voices()[0]
    low, rate = engine.synthesize("no", voice, pitch=0.8)
    high, _ = engine.synthesize("no", voice, pitch=1.25)
    assert fundamental_hz(high, rate) / fundamental_hz(low, rate) == pytest.approx(1.25 / 0.8, rel=0.2)


def test_espeak_voices_cover_accents_and_variants():
    voices = tts.load_engine("espeak").voices()
    assert len(voices) == len(tts_native.EspeakEngine.ACCENTS) * len(tts_native.EspeakEngine.VARIANTS)
    for voice in ("en-us", "en-gb-scotland+f1", "en-029+klatt3", "en+croak"):
        assert voice in voices
        samples, _ = tts.load_engine("espeak").synthesize("go", voice)
        assert np.sqrt(np.mean(samples**2)) > 0.01, voice


ESPEAK_HASHES = """
import hashlib, json
from bifsmn_tf.data import tts
engine = tts.load_engine("espeak")
print(json.dumps({v: hashlib.sha1(engine.synthesize("bed", v)[0].tobytes()).hexdigest() for v in engine.voices()}))
"""


def test_every_espeak_voice_says_the_same_in_every_process():
    """Breath noise in libespeak-ng depends on where the process mapped things: a voice with it
    came out differently in about one process in two. Four processes at once, every voice."""
    runs = [
        subprocess.Popen([sys.executable, "-c", ESPEAK_HASHES], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    hashes = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    differ = sorted(v for v in hashes[0] if len({h[v] for h in hashes}) > 1)
    assert differ == [], differ


def test_unknown_voice_and_engine_are_named():
    with pytest.raises(EngineError, match="unknown voice 'en-xx'"):
        tts.load_engine("espeak").synthesize("yes", "en-xx")
    with pytest.raises(EngineError, match="unknown speech engine 'festival'; known: espeak, pico"):
        tts.load_engine("festival")


def test_missing_packages_are_named():
    missing = {n: c.missing_distributions() for n, c in tts.ENGINES.items() if c.missing_distributions()}
    if not missing:
        pytest.skip("every engine is installed here")
    name, packages = next(iter(missing.items()))
    with pytest.raises(EngineError, match=f"needs the package\\(s\\) {packages[0]}"):
        tts.load_engine(name)
    assert name not in tts.installed_engines()


@pytest.mark.parametrize(
    "ipa, british, misaki",
    [
        ("jˈɛs", False, "jˈɛs"),
        ("fˈaɪv", False, "fˈIv"),
        ("ɡˈoʊ", False, "ɡˈO"),
        ("ɡˈəʊ", True, "ɡˈQ"),
        ("bˈækwɚd", False, "bˈækwəɹd"),
        ("lˈɜːn", False, "lˈɜɹn"),
        ("lˈɜːn", True, "lˈɜːn"),
        ("ʃˈiːlɐ", True, "ʃˈiːlə"),
        ("dʒˈʌmp tʃˈɪp", False, "ʤˈʌmp ʧˈɪp"),
    ],
)
def test_espeak_ipa_maps_to_kokoro_phonemes(ipa: str, british: bool, misaki: str):
    assert tts_onnx.espeak_ipa_to_misaki(ipa, british) == misaki
