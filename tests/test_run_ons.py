"""Run-on negatives: where speech lies in a clip, and windows of words said one after another."""

from __future__ import annotations

import numpy as np
import pytest

from bifsmn_tf.data import run_ons
from bifsmn_tf.data.run_ons import run_on_clips, speech_span

RATE = 16000
SIZE = RATE


def burst(frequency: float, start_s: float, seconds: float, *, noise_db: float | None = None, seed: int = 0):
    """A 1-s clip: a tone at 0.5 from ``start_s`` for ``seconds``, over white noise ``noise_db``
    below the tone's RMS (or digital silence)."""
    clip = np.zeros(SIZE, np.float32)
    if noise_db is not None:
        clip += (0.5 / np.sqrt(2) * 10 ** (noise_db / 20)) * np.random.default_rng(seed).standard_normal(SIZE)
    t = np.arange(int(seconds * RATE)) / RATE
    begin = int(start_s * RATE)
    clip[begin : begin + len(t)] += 0.5 * np.sin(2 * np.pi * frequency * t)
    return clip


@pytest.mark.parametrize(("start_s", "seconds"), [(0.2, 0.3), (0.0, 0.5), (0.55, 0.45), (0.4, 0.05)])
def test_speech_span_finds_a_burst_in_silence(start_s, seconds):
    start, stop = speech_span(burst(440, start_s, seconds), RATE)
    # To the 10-ms frame: a frame partly filled is loud enough.
    assert abs(start - start_s * RATE) <= RATE // 100
    assert abs(stop - (start_s + seconds) * RATE) <= RATE // 100


def test_speech_span_looks_past_the_background_only_when_asked():
    noisy = burst(440, 0.3, 0.2, noise_db=-10)
    # The noise is within 40 dB of the tone: by the peak rule alone, all of it is speech.
    assert speech_span(noisy, RATE) == (0, SIZE)
    start, stop = speech_span(noisy, RATE, above_noise_db=run_ons.ABOVE_NOISE_DB)
    assert abs(start - 0.3 * RATE) <= RATE // 100 and abs(stop - 0.5 * RATE) <= RATE // 100


@pytest.mark.parametrize("samples", [np.zeros(SIZE, np.float32), np.ones(100, np.float32)])
def test_speech_span_of_silence_or_less_than_a_frame_is_the_whole_clip(samples):
    assert speech_span(samples, RATE) == (0, len(samples))


def _clips(frequencies, *, as_pcm: bool):
    clips = np.stack([burst(f, 0.3 + 0.1 * (i % 3), 0.25, noise_db=-30, seed=i) for i, f in enumerate(frequencies)])
    if as_pcm:
        clips = np.round(clips * 32767).astype(np.int16)
    return clips, np.full(len(clips), SIZE, np.int32)


def _tones_in(window: np.ndarray, frequencies) -> set[float]:
    spectrum = np.abs(np.fft.rfft(window))
    peak = spectrum.max()
    return {f for f in frequencies if spectrum[int(round(f * len(window) / RATE))] > 0.05 * peak}


@pytest.mark.parametrize("as_pcm", [False, True])
def test_run_ons_hold_several_words_and_only_the_rows_given(as_pcm):
    words = [300.0, 500.0, 700.0, 900.0, 1100.0]
    keyword = 1500.0
    clips, lengths = _clips([*words, keyword], as_pcm=as_pcm)
    rows = np.arange(len(words))  # the last clip is a keyword: not among the rows
    windows = run_on_clips(clips, lengths, rows, 64, RATE, np.random.default_rng(0))
    assert windows.shape == (64, SIZE) and windows.dtype == np.float32
    assert np.abs(windows).max() <= 1.0
    heard = [_tones_in(w, [*words, keyword]) for w in windows]
    assert all(keyword not in tones for tones in heard)
    # Each word is a quarter of a second of tone: most windows hold more than one word's worth
    # (the others: one side only, whose next word starts past the edge), of two tones or more
    # (a word may meet itself).
    loud_frames = (np.abs(windows).reshape(64, 100, -1).max(axis=2) > 0.2).sum(axis=1)
    assert np.mean(loud_frames > 27) > 0.7
    assert np.mean([len(tones) >= 2 for tones in heard]) > 0.5
    assert max(len(tones) for tones in heard) >= 3
    # The words run off the edges: some windows end, and some begin, in speech.
    edge = RATE // 50
    assert np.mean(np.abs(windows[:, -edge:]).max(axis=1) > 0.2) > 0.2
    assert np.mean(np.abs(windows[:, :edge]).max(axis=1) > 0.2) > 0.2


def test_run_ons_are_a_function_of_the_generator():
    clips, lengths = _clips([300.0, 500.0, 700.0], as_pcm=True)
    rows = np.arange(3)
    first = run_on_clips(clips, lengths, rows, 8, RATE, np.random.default_rng(5))
    np.testing.assert_array_equal(first, run_on_clips(clips, lengths, rows, 8, RATE, np.random.default_rng(5)))
    assert not np.array_equal(first, run_on_clips(clips, lengths, rows, 8, RATE, np.random.default_rng(6)))


def test_run_ons_keep_the_centre_word_where_it_was_said():
    # With one side filled, the centre clip is untouched on the other side of its speech.
    clips, lengths = _clips([300.0, 500.0], as_pcm=False)
    windows = run_on_clips(clips, lengths, np.arange(2), 32, RATE, np.random.default_rng(1))
    untouched = [
        any(np.array_equal(w[: int(0.3 * RATE)], c[: int(0.3 * RATE)]) for c in clips)
        or any(np.array_equal(w[int(0.75 * RATE) :], c[int(0.75 * RATE) :]) for c in clips)
        for w in windows
    ]
    assert any(untouched)


def test_run_ons_need_two_words():
    clips, lengths = _clips([300.0], as_pcm=True)
    with pytest.raises(ValueError, match="at least two"):
        run_on_clips(clips, lengths, np.arange(1), 4, RATE, np.random.default_rng(0))
