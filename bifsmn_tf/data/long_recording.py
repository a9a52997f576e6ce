"""Long recordings with known keyword times, built from the synthetic set, to score a spotter.

A streaming keyword spotter is judged on a recording, not on clips: does it find each keyword
near the time it was said, and does it stay quiet in noise? :func:`keyword_recording` lays
test-split keyword clips of a synthetic set (:mod:`bifsmn_tf.data.synthetic`) 2-4 s apart over
one of its background recordings, followed by a stretch of that noise alone, and records when
each keyword was spoken: the middle of its speech, from the clip's record in ``synth.json``.

Loudness: the background is the set's noise recording times ``noise_gain``, and each clip is
added at the level it was synthesised at (speech -36 to -14 dBFS, the range the models were
trained on). With ``snr_db`` unset, that is all: over a background of about -30 to -17 dBFS at the
default gain, quiet takes sit below the noise (24 % of keywords under 0 dB in five recordings of the
demo's set). With ``snr_db`` set, the background under each keyword is scaled so that the RMS of
its speech is ``snr_db`` above the RMS of the noise under it, which makes the recording's
difficulty a number without moving the speech out of its trained range: scaling the speech
instead took quiet takes over loud noise past full scale (clipping them) or, scaled back, far
below it. The noise gain changes in the middle of the gaps between keywords, over
``GAIN_RAMP_SECONDS``; the noise alone at the end stays at ``noise_gain``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE, read_wav
from bifsmn_tf.data.labels import KEYWORDS
from bifsmn_tf.data.synthetic import BACKGROUND_NOISE_DIR, SYNTH_JSON, SynthError, rms

#: With ``snr_db`` set, the background's gain moves from one keyword's to the next over this span,
#: centred in the gap between them (at least 2 s long): no step, and no change under speech.
GAIN_RAMP_SECONDS = 0.2


@dataclasses.dataclass(frozen=True)
class KeywordRecording:
    """A mono 16 kHz recording in [-1, 1] and what was said in it.

    Attributes:
        samples: float32, shape ``(n,)``.
        keywords: ``(time_s, label)`` per keyword, in time order; ``time_s`` is the middle of
            the keyword's speech.
        clips: the clip each keyword came from, relative to the set's root (its record in
            ``synth.json`` says which engine, voice and perturbations made it).
        speech_seconds: the keywords lie before this time; only noise follows it.
        background: float32, shape ``(n,)``: the noise as mixed in, so that ``samples -
            background`` is the keywords alone (where nothing clipped).
    """

    samples: np.ndarray
    keywords: list[tuple[float, str]]
    clips: list[str]
    speech_seconds: float
    background: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def noise_seconds(self) -> float:
        """Length of the stretch of noise alone at the end."""
        return self.seconds - self.speech_seconds


def keyword_recording(
    root: str | Path,
    *,
    keywords_per_label: int,
    noise_minutes: float,
    snr_db: float | None = None,
    noise_gain: float = 0.3,
    seed: int = 0,
) -> KeywordRecording:
    """``keywords_per_label`` test-split clips of every keyword of the synthetic set at ``root``,
    shuffled and placed 2-4 s apart over its background noise, then ``noise_minutes`` of noise
    alone (see the module docstring for ``snr_db`` and ``noise_gain``)."""
    root = Path(root)
    manifest = root / SYNTH_JSON
    if not manifest.exists():
        raise SynthError(f"{root}: not a finished synthetic set (no {SYNTH_JSON}): keyword times are unknown")
    records = json.loads(manifest.read_text())["clips"]
    rng = np.random.default_rng(seed)
    noise = np.concatenate([read_wav(p) for p in sorted((root / BACKGROUND_NOISE_DIR).glob("*.wav"))])
    chosen = []
    for label in KEYWORDS:
        clips = sorted(p for p, r in records.items() if p.startswith(f"{label}/") and r["split"] == "testing")
        if len(clips) < keywords_per_label:
            raise SynthError(
                f"{root}: {len(clips)} test clips of {label!r}, fewer than the {keywords_per_label} asked for"
            )
        chosen += [(path, label) for path in rng.permutation(clips)[:keywords_per_label]]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    gaps = rng.uniform(2.0, 4.0, size=len(chosen) + 1)
    speech_seconds = float(gaps.sum() + len(chosen))
    total = int((speech_seconds + 60 * noise_minutes) * SAMPLE_RATE)
    start = int(rng.integers(0, len(noise) - total)) if len(noise) > total else 0
    background = np.resize(noise[start:], total) * noise_gain
    keywords, placed, at = [], [], gaps[0]
    for (path, label), gap in zip(chosen, gaps[1:]):
        record = records[path]
        placed.append((int(at * SAMPLE_RATE), read_wav(root / path), record))
        keywords.append((at + record["onset_seconds"] + record["speech_seconds"] / 2, label))
        at += 1.0 + gap
    if snr_db is not None:
        background *= _noise_gain_envelope(background, placed, gaps, snr_db)
    samples = background.copy()
    for offset, clip, _ in placed:
        samples[offset : offset + len(clip)] += clip
    return KeywordRecording(
        np.clip(samples, -1, 1).astype(np.float32),
        keywords,
        [path for path, _ in chosen],
        speech_seconds,
        background.astype(np.float32),
    )


def _noise_gain_envelope(
    background: np.ndarray, placed: list[tuple[int, np.ndarray, dict]], gaps: np.ndarray, snr_db: float
) -> np.ndarray:
    """Per-sample gain for ``background`` that puts each placed clip's speech ``snr_db`` above
    the noise under it; 1 after the last keyword's gap midpoint."""
    levels = []
    for offset, clip, record in placed:
        speech = slice(
            int(record["onset_seconds"] * SAMPLE_RATE),
            int((record["onset_seconds"] + record["speech_seconds"]) * SAMPLE_RATE),
        )
        under = background[offset + speech.start : offset + speech.stop]
        levels.append(rms(clip[speech]) / (10 ** (snr_db / 20) * max(rms(under), 1e-9)))
    levels.append(1.0)
    # Each keyword's level holds from the middle of the gap before it (``gaps[k]`` precedes clip
    # k) to the middle of the gap after it; linear ramps centred on those midpoints.
    boundaries = [offset - gap / 2 * SAMPLE_RATE for (offset, _, _), gap in zip(placed[1:], gaps[1:])]
    boundaries.append(placed[-1][0] + (1.0 + gaps[-1] / 2) * SAMPLE_RATE)
    half_ramp = GAIN_RAMP_SECONDS / 2 * SAMPLE_RATE
    times = [0.0]
    values = [levels[0]]
    for boundary, before, after in zip(boundaries, levels, levels[1:]):
        times += [boundary - half_ramp, boundary + half_ramp]
        values += [before, after]
    return np.interp(np.arange(len(background)), times, values).astype(np.float32)
