"""Long recordings with known keyword times, built from the synthetic set, to score a spotter.

A streaming keyword spotter is judged on a recording, not on clips: does it find each keyword
near the time it was said, and does it stay quiet in noise? :func:`keyword_recording` lays
test-split keyword clips of a synthetic set (:mod:`bifsmn_tf.data.synthetic`) 2-4 s apart over
one of its background recordings, followed by a stretch of that noise alone, and records when
each keyword was spoken: the middle of its speech, from the clip's record in ``synth.json``.

Loudness: the background is the set's noise recording times ``noise_gain``. With ``snr_db``
unset, each clip is added at the level it was synthesised at (speech -36 to -14 dBFS over a
background of about -30 to -17 dBFS at the default gain, so quiet takes sit below the noise);
with ``snr_db`` set, each clip is scaled so that the RMS of its speech is ``snr_db`` above the
RMS of the background under it, which makes the recording's difficulty a number. A quiet take
over loud noise then needs tens of dB of gain; rather than clip it (which distorts the very
keyword being measured), the whole recording is scaled down until its peak is at full scale,
which leaves every SNR as asked. As made, a loud take may still clip, as it would in a recorder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE, read_wav
from bifsmn_tf.data.labels import KEYWORDS
from bifsmn_tf.data.synthetic import BACKGROUND_NOISE_DIR, SYNTH_JSON, SynthError, rms


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
    """

    samples: np.ndarray
    keywords: list[tuple[float, str]]
    clips: list[str]
    speech_seconds: float

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
    samples = np.resize(noise[start:], total) * noise_gain
    keywords, at = [], gaps[0]
    for (path, label), gap in zip(chosen, gaps[1:]):
        offset = int(at * SAMPLE_RATE)
        clip = read_wav(root / path)
        record = records[path]
        if snr_db is not None:
            speech = slice(
                int(record["onset_seconds"] * SAMPLE_RATE),
                int((record["onset_seconds"] + record["speech_seconds"]) * SAMPLE_RATE),
            )
            under = samples[offset + speech.start : offset + speech.stop]
            clip = clip * (rms(under) * 10 ** (snr_db / 20) / max(rms(clip[speech]), 1e-9))
        samples[offset : offset + len(clip)] += clip
        keywords.append((at + record["onset_seconds"] + record["speech_seconds"] / 2, label))
        at += 1.0 + gap
    if snr_db is not None:
        samples /= max(1.0, float(np.abs(samples).max()))
    return KeywordRecording(
        np.clip(samples, -1, 1).astype(np.float32), keywords, [path for path, _ in chosen], speech_seconds
    )
