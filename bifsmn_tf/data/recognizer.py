"""An offline recognizer of real English speech, held to a closed word list.

Speech engines do not say every word clearly: measured with this recognizer
(``benchmarks/intelligibility.py``), Piper's "left" and "off" and hibari's "up" and "go" are
almost never heard as themselves, and a keyword model trained on other engines misses the same
engine-word pairs. ``bifsmn-tf data synth --check-words`` uses it to keep such takes out of a set.

pocketsphinx (BSD-2-Clause) carries its US English acoustic model and dictionary in its wheel:
``pip install 'bifsmn-tf[check]'``. What the check costs a set: BENCHMARKS.md, "Leaving out the
takes a recognizer does not hear".
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE

CHECK_HINT = "pip install 'bifsmn-tf[check]'"


class RecognizerError(RuntimeError):
    """The recognizer cannot be loaded; the message says what to install."""


class WordRecognizer:
    """pocketsphinx restricted to ``words``: one word (or nothing) per utterance.

    Call it on 16 kHz mono float samples of shape ``(n,)``; it returns the word it heard, or
    ``""`` when it heard none of them.
    """

    def __init__(self, words: Sequence[str]) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise RecognizerError(f"pocketsphinx is not installed ({CHECK_HINT})") from None
        words = list(words)
        if not words or any(not w.isalpha() for w in words):
            raise ValueError(f"words must be a non-empty list of plain words, got {words!r}")
        grammar = "#JSGF V1.0;\ngrammar words;\npublic <word> = " + " | ".join(words) + " ;\n"
        with tempfile.TemporaryDirectory(prefix="bifsmn_grammar_") as folder:
            path = Path(folder) / "words.gram"
            path.write_text(grammar)  # read once, when the decoder is made
            try:
                self._decoder = Decoder(jsgf=str(path), lm=None, samprate=SAMPLE_RATE, loglevel="FATAL")
            except RuntimeError as err:  # a word missing from its dictionary, for one
                raise RecognizerError(f"pocketsphinx cannot decode these words: {err}") from None

    def __call__(self, samples: np.ndarray) -> str:
        # Peak-normalised to half scale and padded with 0.2 s of silence each side: the decoder
        # needs some silence to settle on the start and end of the word.
        samples = np.asarray(samples, dtype=np.float64)
        padding = np.zeros(SAMPLE_RATE // 5)
        audio = np.concatenate([padding, samples / max(np.abs(samples).max(initial=0.0), 1e-9) * 0.5, padding])
        self._decoder.start_utt()
        self._decoder.process_raw((audio * 32767).astype(np.int16).tobytes(), full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis else ""
