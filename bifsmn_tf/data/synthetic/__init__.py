"""The built-in synthetic keyword set, in the Speech Commands layout.

Google Speech Commands cannot always be downloaded, so ``bifsmn-tf data synth`` speaks its words
with the speech engines of :mod:`bifsmn_tf.data.tts` and writes::

    OUT/<word>/<speaker>_nohash_0.wav      1 s, 16 kHz, mono, 16-bit; one take per speaker
    OUT/_background_noise_/<kind>.wav      long noise recordings of several colours and kinds
    OUT/validation_list.txt, testing_list.txt
    OUT/synth.json                         config, engines, and every clip's perturbations
                                           (and the takes ``check_words`` left out)

**Speakers.** ``clips_per_word`` speakers each say every word once. A speaker is an engine voice
(accent and timbre) with its own vocal-tract length, pitch, speaking rate, intonation range, room
and microphone; each take adds its own rate/pitch jitter, intonation (punctuation), loudness,
position in the second, breath, background noise at a random SNR and sometimes clipping.
A model trained on one engine's plain voices learns the engine, not the words, so the set varies
everything a real recording varies.

**Split by speaker.** Validation and test speakers never say anything in training; for engines
with many voices (espeak-ng, Kokoro) their base voices are also disjoint from the training ones.

**Determinism.** Every random draw comes from a generator seeded by ``(seed, what, speaker,
word)``, so the files do not depend on ``jobs`` or on the order of work; the same seed and the
same engine versions give byte-identical files.

The modules, in the order the work runs:

- :mod:`~bifsmn_tf.data.synthetic.config`: the settings (:class:`SynthConfig`,
  :class:`Perturbations`) and their limits;
- :mod:`~bifsmn_tf.data.synthetic.plan`: the speakers, their splits, engines, voices, rooms and
  microphones (:func:`plan_speakers`), and the seeded draws;
- :mod:`~bifsmn_tf.data.synthetic.acoustics`: speech with vocal-tract warping (:func:`speak`),
  rooms, microphones, breaths and the background recordings;
- :mod:`~bifsmn_tf.data.synthetic.rendering`: one take of a word, from synthesis to the clip
  (:class:`ClipRenderer`), with the recognizer's check;
- :mod:`~bifsmn_tf.data.synthetic.generation`: the set on disk (:func:`generate`): worker
  processes, resuming, ``synth.json``.
"""

from bifsmn_tf.data.synthetic.acoustics import (
    NOISE_KINDS,
    background_noise,
    coloured_noise,
    microphone_response,
    resample,
    rms,
    room_impulse_response,
    speak,
    trim_silence,
)
from bifsmn_tf.data.synthetic.config import (
    DEFAULT_CLIPS_PER_WORD,
    MAX_CLIPS_PER_WORD,
    MIN_CLIPS_PER_WORD,
    Perturbations,
    SynthConfig,
    SynthError,
)
from bifsmn_tf.data.synthetic.generation import (
    GENERATOR_VERSION,
    PARTIAL_DIR,
    SYNTH_JSON,
    SynthResult,
    default_jobs,
    generate,
)
from bifsmn_tf.data.synthetic.plan import Speaker, plan_speakers
from bifsmn_tf.data.synthetic.rendering import ClipRenderer

__all__ = [
    "DEFAULT_CLIPS_PER_WORD",
    "GENERATOR_VERSION",
    "MAX_CLIPS_PER_WORD",
    "MIN_CLIPS_PER_WORD",
    "NOISE_KINDS",
    "PARTIAL_DIR",
    "SYNTH_JSON",
    "ClipRenderer",
    "Perturbations",
    "Speaker",
    "SynthConfig",
    "SynthError",
    "SynthResult",
    "background_noise",
    "coloured_noise",
    "default_jobs",
    "generate",
    "microphone_response",
    "plan_speakers",
    "resample",
    "rms",
    "room_impulse_response",
    "speak",
    "trim_silence",
]
