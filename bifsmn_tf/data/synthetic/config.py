"""What a synthetic set is made of: the settings ``synth.json`` records, and their limits."""

from __future__ import annotations

import dataclasses

from bifsmn_tf.config import JsonConfig
from bifsmn_tf.data import tts
from bifsmn_tf.data.labels import WORDS
from bifsmn_tf.data.speech_commands import CLIP_SECONDS
from bifsmn_tf.data.synthetic.vocabulary import TRAINING_NEGATIVES, UNSEEN_WORDS

#: 400 speakers x 30 words = 12,000 clips: made in minutes on 2 cores, and small enough for a
#: dozen teacher and student epochs within the demo's 20 minutes. Fewer speakers learn the words
#: worse, more hardly better (BENCHMARKS.md: generation speed; what transfer grows with).
DEFAULT_CLIPS_PER_WORD = 400
MIN_CLIPS_PER_WORD = 3  # one training, one validation and one test speaker
#: More is a typo: 10,000 speakers of 35 words are 350,000 clips, 11 GB and hours of synthesis.
MAX_CLIPS_PER_WORD = 10_000
#: The splits of the speakers, as ``synth.json`` names them.
SPLITS = ("training", "validation", "testing")


class SynthError(RuntimeError):
    """The synthetic set cannot be made as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Perturbations(JsonConfig):
    """Ranges ``(low, high)`` and probabilities of everything the generator varies.

    Multipliers (vocal tract, pitch, rate) are drawn log-uniformly, levels in dB uniformly.

    Attributes:
        vocal_tract: A speaker's formant scale (above 1: a shorter tract).
        pitch: A speaker's pitch multiplier.
        rate: A speaker's speaking-rate multiplier.
        intonation: A speaker's intonation range, for engines that control it.
        take_jitter: Each take's rate and pitch differ from the speaker's by up to this factor.
        level_dbfs: The RMS of a take's speech.
        breath_probability: Chance of a breath before or after the word.
        breath_db: The breath's level relative to the speech.
        noise_probability: Chance of background noise under a take.
        snr_db: The speech's level above that noise.
        noise_floor_dbfs: The electrical noise every take gets.
        room_probability: Chance that a speaker talks in a simulated room.
        rt60_seconds: The room's reverberation time.
        direct_to_reverberant_db: The room's direct path above its reverberation.
        microphone_probability: Chance that a speaker has a coloured microphone.
        telephone_probability: Chance that such a microphone is a telephone band (300-3400 Hz).
        clipping_probability: Chance that a take is driven into clipping.
        clipping_drive_db: How far its peak is driven above full scale.
    """

    vocal_tract: tuple[float, float] = (0.88, 1.14)
    pitch: tuple[float, float] = (0.75, 1.35)
    rate: tuple[float, float] = (0.75, 1.3)
    intonation: tuple[float, float] = (0.4, 1.6)
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

    Attributes:
        words: The word list, a key of :data:`~bifsmn_tf.data.labels.WORDS` (``v1``, ``v2``).
        clips_per_word: Speakers, each saying every word once.
        seed: Seeds every random draw of the set.
        engines: Speech engines of :data:`~bifsmn_tf.data.tts.ENGINES`; empty means every
            installed engine: :meth:`resolve` fills it in, and the resolved config is what
            ``synth.json`` records.
        validation_percent: Share of the speakers held out for validation.
        testing_percent: Share of the speakers held out for testing.
        background_seconds: Length of each background-noise recording.
        check_words: An offline recognizer of real speech
            (:class:`~bifsmn_tf.data.recognizer.WordRecognizer`) listens to each clean take; a
            take it does not hear as its word is spoken again with a new rate, pitch and
            intonation, up to three times in all, and otherwise left out (``synth.json`` lists
            it under ``rejected``). Takes it hears at once are the same files as without the
            check. Only the set's own words are checked.
        negatives_per_speaker: Each training speaker also says this many words of
            :data:`~bifsmn_tf.data.synthetic.vocabulary.TRAINING_NEGATIVES`, drawn per speaker,
            in ordinary word folders: ``unknown`` to a 12-class task; a 35-class task refuses a
            set with them.
        unseen_words_per_speaker: Each test speaker also says this many words of
            :data:`~bifsmn_tf.data.synthetic.vocabulary.UNSEEN_WORDS`, drawn per speaker, under
            ``_unseen_words_/``, outside the Speech Commands layout and every split: for
            ``evaluate``'s false accepts on words no model heard.
        perturbations: What the speakers and takes vary.

    Raises:
        SynthError: A setting out of range, naming it and its limits.
    """

    words: str = "v1"
    clips_per_word: int = DEFAULT_CLIPS_PER_WORD
    seed: int = 0
    engines: tuple[str, ...] = ()
    validation_percent: float = 10.0
    testing_percent: float = 10.0
    background_seconds: float = 30.0
    check_words: bool = False
    negatives_per_speaker: int = 0
    unseen_words_per_speaker: int = 0
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
        for name, vocabulary in (
            ("negatives_per_speaker", TRAINING_NEGATIVES),
            ("unseen_words_per_speaker", UNSEEN_WORDS),
        ):
            if not 0 <= getattr(self, name) <= len(vocabulary):
                raise SynthError(f"{name} must be in [0, {len(vocabulary)}], got {getattr(self, name)}")
        if self.seed < 0:
            raise SynthError(f"seed must be at least 0, got {self.seed}")

    @property
    def word_list(self) -> tuple[str, ...]:
        """The words every speaker says, in the list's order."""
        return WORDS[self.words]

    def resolve(self) -> SynthConfig:
        """This config with ``engines`` set to the installed engines if it was empty.

        Returns:
            A config that names its engines.

        Raises:
            SynthError: No engine is installed.
        """
        if self.engines:
            return self
        installed = tts.installed_engines()
        if not installed:
            raise SynthError(f"no speech engine is installed; reinstall bifsmn-tf ({tts.EXTRA_HINT})")
        return self.replace(engines=installed)

    def split_sizes(self) -> dict[str, int]:
        """Speakers per split: at least one each, validation and test rounded.

        Returns:
            The number of speakers of each of :data:`SPLITS`.
        """
        n = self.clips_per_word
        validation = max(1, round(n * self.validation_percent / 100))
        testing = max(1, round(n * self.testing_percent / 100))
        return {"training": n - validation - testing, "validation": validation, "testing": testing}
