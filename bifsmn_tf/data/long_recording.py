"""Long recordings with known keyword times, built from the synthetic set, to score a spotter.

A streaming keyword spotter is judged on a recording, not on clips: does it find each keyword
near the time it was said, and does it stay quiet in noise? :func:`keyword_recording` lays
test-split keyword clips of a synthetic set (:mod:`bifsmn_tf.data.synthetic`) 2-4 s apart over
one of its background recordings, followed by a stretch of that noise alone, and records when
each keyword was spoken: the start and end of its speech, from the clip's record in ``synth.json``.

Talk (``talk=True``): a spotter that stays quiet in noise may still fire on people talking. Then
every pause of 2-4 s around a keyword also holds a run of non-keyword speech in its middle: the
set's test-split ``unknown`` clips (every Speech Commands word but the keywords, of every engine
in the test split), each cut to its speech plus ``TALK_PAD_SECONDS`` faded in and out, laid
``TALK_WORD_GAP_SECONDS`` apart in pseudo-sentences of 2-6 words, 1-3 sentences a run,
``TALK_SENTENCE_GAP_SECONDS`` apart. The keyword keeps a pause of 1-2 s on either side (half its
gap), so no match tolerance reaches the talk. After the last run comes the test stretch of the
set's ``babble`` recording (many voices over each other; its last 10 %, which no training crop
comes from) at the background's gain, if the set has one. :attr:`KeywordRecording.talk` records
where every piece of non-keyword speech lies, the denominator of false alarms per hour of it.

Loudness: the background is the set's noise recording times ``noise_gain``, and each clip is
added at the level it was synthesised at (speech -36 to -14 dBFS, the range the models were
trained on). With ``snr_db`` unset, that is all: over a background of about -30 to -17 dBFS at the
default gain, quiet takes sit below the noise (how many: BENCHMARKS.md, "Streaming keyword
spotting"). With ``snr_db`` set, the background under each keyword is scaled so that the RMS of
its speech is ``snr_db`` above the RMS of the noise under it, which makes the recording's
difficulty a number without moving the speech out of its trained range: scaling the speech
instead took quiet takes over loud noise past full scale (clipping them) or, scaled back, far
below it. The noise gain changes in the middle of the gaps between keywords, over
``GAIN_RAMP_SECONDS`` (with ``talk``, that is under the talk, never under a keyword); the noise
alone at the end stays at ``noise_gain``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE, read_wav
from bifsmn_tf.data.labels import KEYWORDS
from bifsmn_tf.data.run_ons import faded_word
from bifsmn_tf.data.speech_commands import BACKGROUND_NOISE_DIR, CLIP_SECONDS, NOISE_STRETCH, UNSEEN_WORDS_DIR
from bifsmn_tf.data.synthetic import SYNTH_JSON, SynthError, rms

#: With ``snr_db`` set, the background's gain moves from one keyword's to the next over this span,
#: centred in the gap between them (at least 2 s long): no step, and no change under speech.
GAIN_RAMP_SECONDS = 0.2
#: Talk: the silence kept around each word's speech, faded, so that a cut does not click.
TALK_PAD_SECONDS = 0.05
#: Talk: between the speech of two words of a sentence (more than the pad: no word's fade
#: reaches the next word's speech), and between two sentences.
TALK_WORD_GAP_SECONDS = (0.08, 0.3)
TALK_SENTENCE_GAP_SECONDS = (0.4, 0.8)
#: The background recording of many voices talking over each other (:mod:`.synthetic`).
BABBLE = f"{BACKGROUND_NOISE_DIR}/babble.wav"


@dataclasses.dataclass(frozen=True)
class KeywordRecording:
    """A mono 16 kHz recording in [-1, 1] and what was said in it.

    Attributes:
        samples: float32, shape ``(n,)``.
        events: ``(start_s, end_s, label)`` per keyword, in time order: where its speech lies.
        clips: the clip each keyword came from, relative to the set's root (its record in
            ``synth.json`` says which engine, voice and perturbations made it).
        speech_seconds: the keywords and the talk lie before this time; only noise follows it.
        background: float32, shape ``(n,)``: the noise as mixed in, so that ``samples -
            background`` is the speech alone (where nothing clipped).
        talk: ``(start_s, end_s, source)`` per piece of non-keyword speech, in time order: a word's
            speech (``source`` the clip, relative to the set's root) or the babble stretch
            (:data:`BABBLE`); empty without ``talk``.
    """

    samples: np.ndarray
    events: list[tuple[float, float, str]]
    clips: list[str]
    speech_seconds: float
    background: np.ndarray
    talk: list[tuple[float, float, str]] = dataclasses.field(default_factory=list)

    @property
    def keywords(self) -> list[tuple[float, str]]:
        """``(time_s, label)`` per keyword: the middle of its speech."""
        return [((start + end) / 2, label) for start, end, label in self.events]

    @property
    def non_keyword_seconds(self) -> float:
        """Seconds of non-keyword speech: the denominator of false alarms per hour of it."""
        return sum(end - start for start, end, _ in self.talk)

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
    talk: bool = False,
) -> KeywordRecording:
    """``keywords_per_label`` test-split clips of every keyword of the synthetic set at ``root``,
    shuffled and placed 2-4 s apart over its background noise, then ``noise_minutes`` of noise
    alone (see the module docstring for ``talk``, ``snr_db`` and ``noise_gain``)."""
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
    # Talk draws from a stream of its own, so that a seed's keywords, order and pauses are the
    # same with talk as without.
    runs = (
        _talk_runs(root, records, len(gaps), noise_gain, np.random.default_rng([seed, 1]))
        if talk
        else [[] for _ in gaps]
    )
    run_seconds = np.array([run[-1][0] + run[-1][3] if run else 0.0 for run in runs])
    # Each clip window's distance from the one before (or from the start; the last: to the end of
    # the speech); without talk, exactly ``gaps``, so that those recordings stay as they were.
    stretches = gaps + run_seconds
    speech_seconds = float(stretches.sum() + len(chosen) * CLIP_SECONDS)
    total = int((speech_seconds + 60 * noise_minutes) * SAMPLE_RATE)
    start = int(rng.integers(0, len(noise) - total)) if len(noise) > total else 0
    background = np.resize(noise[start:], total) * noise_gain
    events, placed, starts, at = [], [], [], stretches[0]
    for (path, label), stretch in zip(chosen, stretches[1:]):
        record = records[path]
        placed.append((int(at * SAMPLE_RATE), read_wav(root / path), record))
        speech_at = at + record["onset_seconds"]
        events.append((speech_at, speech_at + record["speech_seconds"], label))
        starts.append(at)
        at += CLIP_SECONDS + stretch
    talk_spans, talk_placed = [], []
    # A run starts half its pause after the clip window before it (or the recording's start).
    for run, gap, window_end in zip(runs, gaps, [0.0] + [s + CLIP_SECONDS for s in starts]):
        for at, piece, lead, seconds, source in run:
            at += window_end + gap / 2
            talk_spans.append((at, at + seconds, source))
            talk_placed.append((int(at * SAMPLE_RATE) - lead, piece))
    if snr_db is not None:
        background *= _noise_gain_envelope(background, placed, stretches, snr_db)
    samples = background.copy()
    for offset, clip in [(offset, clip) for offset, clip, _ in placed] + talk_placed:
        samples[offset : offset + len(clip)] += clip
    return KeywordRecording(
        np.clip(samples, -1, 1).astype(np.float32),
        events,
        [path for path, _ in chosen],
        speech_seconds,
        background.astype(np.float32),
        talk_spans,
    )


def _talk_runs(
    root: Path, records: dict[str, dict], count: int, noise_gain: float, rng: np.random.Generator
) -> list[list[tuple[float, np.ndarray, int, float, str]]]:
    """``count`` runs of non-keyword speech, the babble stretch ending the last one. A run is a
    list of ``(time_s, piece, lead, seconds, source)``: its speech, ``seconds`` long, starts
    ``time_s`` after the run's first and ``lead`` samples into ``piece``."""
    # Speech Commands' words, as the talk has always been: words no model heard are evaluate's.
    pool = sorted(
        p
        for p, r in records.items()
        if r["split"] == "testing" and p.split("/")[0] not in (*KEYWORDS, UNSEEN_WORDS_DIR)
    )
    if not pool:
        raise SynthError(f"{root}: no test clips of non-keyword words to talk with")
    # Every word is said once before any is said again.
    words = itertools.chain.from_iterable(rng.permutation(pool) for _ in itertools.count())
    runs = []
    for _ in range(count):
        run, at = [], 0.0
        for sentence in range(rng.integers(1, 4)):
            at += rng.uniform(*TALK_SENTENCE_GAP_SECONDS) if sentence else 0.0
            for word in range(rng.integers(2, 7)):
                at += rng.uniform(*TALK_WORD_GAP_SECONDS) if word else 0.0
                path = str(next(words))
                piece, lead = _talk_word(read_wav(root / path), records[path])
                run.append((at, piece, lead, records[path]["speech_seconds"], path))
                at += records[path]["speech_seconds"]
        runs.append(run)
    if (root / BABBLE).exists():
        babble = read_wav(root / BABBLE)
        begin, end = NOISE_STRETCH["test"]
        stretch = babble[int(begin * len(babble)) : int(end * len(babble))] * noise_gain
        at += rng.uniform(*TALK_SENTENCE_GAP_SECONDS)
        runs[-1].append((at, stretch, 0, len(stretch) / SAMPLE_RATE, BABBLE))
    return runs


def _talk_word(clip: np.ndarray, record: dict) -> tuple[np.ndarray, int]:
    """The clip's speech with ``TALK_PAD_SECONDS`` either side, faded in and out (the speech
    itself untouched), and where the speech starts in it."""
    start = int(record["onset_seconds"] * SAMPLE_RATE)
    stop = int((record["onset_seconds"] + record["speech_seconds"]) * SAMPLE_RATE)
    return faded_word(clip, start, stop, int(TALK_PAD_SECONDS * SAMPLE_RATE))


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
    boundaries.append(placed[-1][0] + (CLIP_SECONDS + gaps[-1] / 2) * SAMPLE_RATE)
    half_ramp = GAIN_RAMP_SECONDS / 2 * SAMPLE_RATE
    times = [0.0]
    values = [levels[0]]
    for boundary, before, after in zip(boundaries, levels, levels[1:]):
        times += [boundary - half_ramp, boundary + half_ramp]
        values += [before, after]
    return np.interp(np.arange(len(background)), times, values).astype(np.float32)
