"""The offline word recognizer that `data synth --check-words` listens with (real pocketsphinx)."""

from __future__ import annotations

import numpy as np
import pytest

from bifsmn_tf.data import tts
from bifsmn_tf.data.labels import WORDS_V1
from bifsmn_tf.data.recognizer import RecognizerError, WordRecognizer
from bifsmn_tf.data.synthetic import speak

pytest.importorskip("pocketsphinx")


@pytest.fixture(scope="module")
def recognizer() -> WordRecognizer:
    return WordRecognizer(WORDS_V1)


@pytest.mark.parametrize("word", ["yes", "no", "left", "right", "stop", "down"])
def test_hears_clear_words_as_themselves(recognizer: WordRecognizer, word: str):
    samples, _ = speak(tts.load_engine("pico"), word, "en-US")
    assert recognizer(samples) == word
    assert recognizer(samples * 0.01) == word  # it normalises the level itself


def test_tells_the_words_apart(recognizer: WordRecognizer):
    pico = tts.load_engine("pico")
    heard = {w: recognizer(speak(pico, w, "en-US")[0]) for w in WORDS_V1}
    assert sum(heard[w] == w for w in WORDS_V1) >= 25, heard


@pytest.mark.parametrize("samples", [np.zeros(16000), np.zeros(0), np.zeros(3)])
def test_silence_is_no_word(recognizer: WordRecognizer, samples: np.ndarray):
    assert recognizer(samples) == ""


def test_a_closed_list_only_returns_its_words():
    pico = tts.load_engine("pico")
    recognizer = WordRecognizer(["yes", "no"])
    assert recognizer(speak(pico, "yes", "en-US")[0]) == "yes"
    assert recognizer(speak(pico, "house", "en-US")[0]) in {"yes", "no", ""}


@pytest.mark.parametrize(
    "words, error", [([], ValueError), (["yes", "two words"], ValueError), (["yes", "zzyzxq"], RecognizerError)]
)
def test_bad_word_lists_are_refused(words: list, error: type):
    with pytest.raises(error):
        WordRecognizer(words)
