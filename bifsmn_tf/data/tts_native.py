"""The speech engines in native libraries: espeak-ng (through ``ctypes``) and SVOX Pico.

Both run C code inside this process and share its C runtime: ``rand``, seeded before each
espeak-ng call, and the allocator, set so that Pico's work area starts zeroed. libespeak-ng is
loaded once per process (:func:`espeak_library`) and also phonemizes for the engines of
:mod:`bifsmn_tf.data.tts_onnx`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import zlib
from typing import ClassVar

import numpy as np

from bifsmn_tf.data.tts_engine import EngineError, SpeechEngine

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


class EspeakLibrary:
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
def espeak_library() -> EspeakLibrary:
    """The process's one :class:`EspeakLibrary`, loaded on first use."""
    return EspeakLibrary()


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
        self._espeak = espeak_library()

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
