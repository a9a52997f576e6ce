"""Who says what: the set's speakers, their splits, engines and voices, and the seeded draws.

Every random draw of the generator comes from :func:`rng`, seeded by ``(seed, stream, keys...)``
with a :class:`Stream` per kind of draw, so that what one clip draws never depends on another
clip, on ``jobs`` or on the order of work.
"""

from __future__ import annotations

import dataclasses
import enum
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bifsmn_tf.data.speech_commands import UNSEEN_WORDS_DIR, clip_path
from bifsmn_tf.data.synthetic.config import SPLITS, Perturbations, SynthConfig
from bifsmn_tf.data.synthetic.vocabulary import TRAINING_NEGATIVES, UNSEEN_WORDS

#: Engines with at least this many voices get disjoint voice pools per split.
_MIN_VOICES_TO_SPLIT = 10


class Stream(enum.IntEnum):
    """The kinds of draw, each from generators of its own (the values are part of every seed)."""

    PLAN = 0
    SPEAKER = 1
    CLIP = 2
    BACKGROUND = 3
    ROOM = 4
    RETAKE = 5
    NEGATIVES = 6


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A synthetic person: engine voice plus everything that stays the same across their takes.

    Attributes:
        id: ``<engine>-<index>``, the part of each clip's name before ``_nohash_``.
        index: Position in the plan, a key of the speaker's draws.
        split: One of :data:`~bifsmn_tf.data.synthetic.config.SPLITS`.
        engine: The speech engine's name.
        voice: One of the engine's voices.
        vocal_tract: Formant scale.
        pitch: Pitch multiplier.
        rate: Speaking-rate multiplier.
        intonation: Intonation range, for engines that control it.
        room: The simulated room (:func:`~bifsmn_tf.data.synthetic.acoustics.room_impulse_response`),
            or None.
        microphone: The microphone
            (:func:`~bifsmn_tf.data.synthetic.acoustics.microphone_response`), or None.
    """

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
        """The speaker as ``synth.json`` records it."""
        return dataclasses.asdict(self)


def rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """The generator of one kind of draw for one thing (a speaker, a clip, a retake).

    Args:
        seed: The set's seed.
        stream: The kind of draw.
        *keys: What the draw is for: a speaker's index, a word's :func:`word_key`, ...

    Returns:
        A generator seeded by all of them.
    """
    return np.random.default_rng([seed, int(stream), *keys])


def word_key(word: str) -> int:
    """A stable key per word, so that a word's clips do not depend on which list it came from."""
    return zlib.crc32(word.encode())


def speaker_takes(config: SynthConfig, speaker: Speaker) -> list[tuple[str, str]]:
    """What ``speaker`` says, and where each take goes: ``(word, path relative to the root)``.

    Every speaker says the set's words; a training speaker also says ``negatives_per_speaker``
    words of :data:`.TRAINING_NEGATIVES`, a test speaker ``unseen_words_per_speaker`` of
    :data:`.UNSEEN_WORDS` (under :data:`~bifsmn_tf.data.speech_commands.UNSEEN_WORDS_DIR`), drawn
    for the speaker alone.
    """
    takes = [(word, clip_path(word, speaker.id)) for word in config.word_list]
    extra = {
        "training": (config.negatives_per_speaker, TRAINING_NEGATIVES, ""),
        "testing": (config.unseen_words_per_speaker, UNSEEN_WORDS, f"{UNSEEN_WORDS_DIR}/"),
    }
    count, vocabulary, folder = extra.get(speaker.split, (0, (), ""))
    if count:
        picked = rng(config.seed, Stream.NEGATIVES, speaker.index).choice(len(vocabulary), count, replace=False)
        takes += [(vocabulary[i], folder + clip_path(vocabulary[i], speaker.id)) for i in sorted(picked)]
    return takes


def uniform(draw: np.random.Generator, bounds: Sequence[float]) -> float:
    """A uniform draw in ``bounds``, rounded: ``synth.json`` then records exactly the value used."""
    return round(float(draw.uniform(*bounds)), 4)


def log_uniform(draw: np.random.Generator, bounds: Sequence[float]) -> float:
    """A log-uniform draw in ``bounds`` (for multipliers), rounded as :func:`uniform`'s."""
    return round(float(np.exp(draw.uniform(np.log(bounds[0]), np.log(bounds[1])))), 4)


def plan_speakers(
    config: SynthConfig, voices: Mapping[str, Sequence[str]], shares: Mapping[str, float]
) -> list[Speaker]:
    """Every speaker of the set.

    Speakers are split first; within each split the engines take turns in proportion to their
    share, so that every split has the same engine mix. Engines with many voices draw each
    split's voices from its own disjoint pool.

    Args:
        config: The set's config, resolved (its engines named).
        voices: Each engine's voice names.
        shares: Each engine's :attr:`~bifsmn_tf.data.tts_engine.SpeechEngine.share`.

    Returns:
        The speakers, in index order.
    """
    draw = rng(config.seed, Stream.PLAN)
    sizes = config.split_sizes()
    splits = [s for s in SPLITS for _ in range(sizes[s])]
    splits = [splits[i] for i in draw.permutation(len(splits))]
    names = list(config.engines)
    pools = {name: _voice_pools(voices[name], config, draw) for name in names}
    turns = {
        split: iter(_engine_turns(names, [shares[n] for n in names], sizes[split], int(draw.integers(len(names)))))
        for split in SPLITS
    }
    return [_speaker(config, index, split, next(turns[split]), pools) for index, split in enumerate(splits)]


def _speaker(
    config: SynthConfig, index: int, split: str, engine: str, pools: Mapping[str, Mapping[str, Sequence[str]]]
) -> Speaker:
    """Speaker ``index`` of ``split``, speaking with ``engine``, and its own draws."""
    pert = config.perturbations
    draw = rng(config.seed, Stream.SPEAKER, index)
    pool = pools[engine][split]
    return Speaker(
        id=f"{engine}-{index:04d}",
        index=index,
        split=split,
        engine=engine,
        voice=pool[int(draw.integers(len(pool)))],
        vocal_tract=log_uniform(draw, pert.vocal_tract),
        pitch=log_uniform(draw, pert.pitch),
        rate=log_uniform(draw, pert.rate),
        intonation=uniform(draw, pert.intonation),
        room=_draw_room(draw, pert) if draw.random() < pert.room_probability else None,
        microphone=_draw_microphone(draw, pert) if draw.random() < pert.microphone_probability else None,
    )


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


def _voice_pools(voices: Sequence[str], config: SynthConfig, draw: np.random.Generator) -> dict[str, tuple[str, ...]]:
    """The voices each split may use: all of them, or disjoint shares if the engine has many."""
    voices = tuple(voices)
    if len(voices) < _MIN_VOICES_TO_SPLIT:
        return dict.fromkeys(SPLITS, voices)
    shuffled = [voices[i] for i in draw.permutation(len(voices))]
    n_val = max(1, round(len(voices) * config.validation_percent / 100))
    n_test = max(1, round(len(voices) * config.testing_percent / 100))
    return {
        "testing": tuple(shuffled[:n_test]),
        "validation": tuple(shuffled[n_test : n_test + n_val]),
        "training": tuple(shuffled[n_test + n_val :]),
    }


def _draw_room(draw: np.random.Generator, pert: Perturbations) -> dict[str, float]:
    """A speaker's room: reverberation time, its level, pre-delay and how dull its tail is."""
    return {
        "rt60_seconds": uniform(draw, pert.rt60_seconds),
        "direct_to_reverberant_db": uniform(draw, pert.direct_to_reverberant_db),
        "predelay_ms": uniform(draw, (0.0, 15.0)),
        "tail_lowpass_hz": log_uniform(draw, (2500.0, 7500.0)),
    }


def _draw_microphone(draw: np.random.Generator, pert: Perturbations) -> dict[str, Any]:
    """A speaker's microphone: its band (sometimes a telephone's) and two resonances."""
    if draw.random() < pert.telephone_probability:
        highpass, lowpass = 300.0, 3400.0
    else:
        highpass = log_uniform(draw, (40.0, 250.0))
        lowpass = log_uniform(draw, (3500.0, 7600.0)) if draw.random() < 0.6 else None
    peaks = [
        {
            "hz": log_uniform(draw, (150.0, 6000.0)),
            "gain_db": uniform(draw, (-9.0, 9.0)),
            "q": uniform(draw, (0.7, 2.5)),
        }
        for _ in range(2)
    ]
    return {"highpass_hz": highpass, "lowpass_hz": lowpass, "peaks": peaks}
