"""Non-keyword speech in context: one-second windows of words said one after another.

A keyword spotter listens to a second at a time, sliding. In a room where people talk, most of
those seconds hold the end of one word, a whole word and the start of the next, never one word
alone in silence, which is all a Speech Commands split offers as ``unknown``. Trained on single
words only, the models fired on such windows hundreds of times per hour of talk (BENCHMARKS.md,
"Streaming keyword spotting"). :func:`run_on_clips` makes such windows from a split's own
non-keyword clips, to be labelled ``unknown`` (``DataConfig.train_run_on_share``):

- a centre clip, whole: its word where it was said, over its own background;
- words of other non-keyword clips, cut to their speech (:func:`speech_span`, which also looks
  past the clip's background; ``MARGIN_SECONDS`` faded in and out), laid after its speech and before it,
  ``GAP_SECONDS`` apart, until the second is full; the last on each side runs off the edge, so
  the window also holds fragments of words. Each side is filled with probability ``SIDE_PROB``,
  and at least one side is.

Every word keeps the level it was recorded at. Keywords are never used: a window that holds a
keyword should be heard as that keyword.
"""

from __future__ import annotations

import numpy as np

#: Silence between the speech of two words: a fluent speaker's pause, up to a short breath.
GAP_SECONDS = (0.05, 0.4)
#: Each side of the centre word is filled with words with this probability (at least one is).
SIDE_PROB = 0.75
#: Speech is what lies within this many dB of the loudest 10 ms of the clip...
SPEECH_FLOOR_DB = -40.0
#: ... and, in a recorded clip, this far above its background: at the lowest SNRs of a set,
#: the whole second is within 40 dB of the word.
ABOVE_NOISE_DB = 10.0
#: Kept, faded, either side of a word's speech, so that a cut does not click.
MARGIN_SECONDS = 0.02


def speech_span(
    samples: np.ndarray, rate: int, floor_db: float = SPEECH_FLOOR_DB, above_noise_db: float | None = None
) -> tuple[int, int]:
    """``(start, stop)`` samples of the speech in ``samples``: from the first to the end of the
    last 10-ms frame whose RMS is within ``floor_db`` of the loudest frame's and, with
    ``above_noise_db``, that far above the clip's background (its quietest fifth of frames).
    ``(0, len)`` when no frame is louder than silence, or the clip is shorter than a frame."""
    frame = rate // 100
    n = len(samples) // frame
    if n == 0:
        return 0, len(samples)
    energy = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1))
    threshold = energy.max() * 10 ** (floor_db / 20)
    if above_noise_db is not None:
        threshold = max(threshold, np.percentile(energy, 20) * 10 ** (above_noise_db / 20))
    loud = np.flatnonzero(energy > threshold)
    if loud.size == 0:
        return 0, len(samples)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def faded_word(samples: np.ndarray, start: int, stop: int, margin: int) -> tuple[np.ndarray, int]:
    """The speech ``samples[start:stop]`` with ``margin`` samples either side faded in and out
    (the speech itself untouched), float32, and where the speech starts in it."""
    low, high = max(start - margin, 0), min(stop + margin, len(samples))
    fade = np.interp(np.arange(low, high), [low - 1, start, stop - 1, high], [0.0, 1.0, 1.0, 0.0])
    return (samples[low:high] * fade).astype(np.float32), start - low


def run_on_clips(
    clips: np.ndarray, lengths: np.ndarray, rows: np.ndarray, count: int, rate: int, rng: np.random.Generator
) -> np.ndarray:
    """``(count, S)`` float32 windows of non-keyword words in context.

    Args:
        clips: ``(C, S)`` clips (int16 PCM or float in [-1, 1]), zero-padded to ``S`` samples.
        lengths: ``(C,)`` their true lengths.
        rows: The rows of ``clips`` that hold non-keyword words (at least two).
        count: Windows to make.
        rate: Sample rate.
        rng: Every draw comes from it.

    Returns:
        Windows in [-1, 1] (the sum is clipped), of the same length ``S``.
    """
    if len(rows) < 2:
        raise ValueError(f"run-ons need at least two non-keyword clips, got {len(rows)}")
    scale = 32768.0 if clips.dtype == np.int16 else 1.0
    size = clips.shape[1]
    margin = int(MARGIN_SECONDS * rate)
    spans: dict[int, tuple[int, int]] = {}

    def clip(row: int) -> np.ndarray:
        return clips[row, : lengths[row]].astype(np.float32) / scale

    def span(row: int) -> tuple[int, int]:
        if row not in spans:
            spans[row] = speech_span(clip(row), rate, above_noise_db=ABOVE_NOISE_DB)
        return spans[row]

    def word(row: int) -> np.ndarray:
        return faded_word(clip(row), *span(row), margin)[0]

    def gap() -> int:
        return int(rng.uniform(*GAP_SECONDS) * rate)

    windows = np.zeros((count, size), np.float32)
    for window in windows:
        centre = int(rng.choice(rows))
        window[: lengths[centre]] = clip(centre)
        start, stop = span(centre)
        after = rng.random() < SIDE_PROB
        before = rng.random() < SIDE_PROB or not after
        at = stop
        while after and at < size:
            piece = word(int(rng.choice(rows)))
            at += gap()
            fits = min(len(piece), max(size - at, 0))
            window[at : at + fits] += piece[:fits]
            at += len(piece)
        at = start
        while before and at > 0:
            piece = word(int(rng.choice(rows)))
            at -= gap() + len(piece)
            if at + len(piece) <= 0:
                break
            skip = max(-at, 0)
            window[max(at, 0) : at + len(piece)] += piece[skip:]
    return np.clip(windows, -1.0, 1.0)
