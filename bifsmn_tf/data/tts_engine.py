"""The interface of a speech engine adapter (:class:`SpeechEngine`) and its error.

The adapters are registered in :mod:`bifsmn_tf.data.tts`, which loads them by name.
"""

from __future__ import annotations

import abc
import importlib.metadata
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
