"""One clip: a speaker's take of a word, from synthesis to the 16-bit second on disk.

One take: synthesis with vocal-tract warping -> breath and placement in the second -> room ->
background noise at an SNR -> microphone -> level -> electrical noise floor -> clipping. Its
draws come from the clip's own generator (:func:`~bifsmn_tf.data.synthetic.plan.rng` keyed by
speaker and word), so a clip is the same whichever process renders it, and when.

**Checked takes** (``check_words``): an offline recognizer of real speech listens to each clean
take before anything is added to it; a take it does not hear as its word is spoken again, and
after three takes left out. Engines say some words so that no listener would take them for the
word, and such a clip teaches a model a wrong label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from bifsmn_tf.data import tts
from bifsmn_tf.data.audio import SAMPLE_RATE
from bifsmn_tf.data.recognizer import WordRecognizer
from bifsmn_tf.data.speech_commands import CLIP_SAMPLES
from bifsmn_tf.data.synthetic.acoustics import (
    breath,
    db_gain,
    microphone_response,
    rms,
    room_impulse_response,
    speak,
)
from bifsmn_tf.data.synthetic.config import SynthConfig
from bifsmn_tf.data.synthetic.plan import Speaker, Stream, log_uniform, rng, uniform, word_key

#: Punctuation a take ends with: each engine intones a statement, question or exclamation.
_INTONATIONS = (".", "?", "!", "")
#: Takes of a word with ``check_words`` before it is left out: a second take recovers a few
#: words, further ones hardly any.
_CHECK_ATTEMPTS = 3


class ClipRenderer:
    """Renders a speaker's takes; holds the loaded engines and the background recordings.

    Args:
        config: The set's config, resolved.
        noise_bank: The set's background recordings by kind, as written to disk.
    """

    def __init__(self, config: SynthConfig, noise_bank: Mapping[str, np.ndarray]) -> None:
        self.config = config
        self.noise_bank = noise_bank
        self.engines = {name: tts.load_engine(name) for name in config.engines}
        self.recognizer = WordRecognizer(config.word_list) if config.check_words else None

    def render_speaker(self, speaker: Speaker, words: Iterable[str]) -> Iterable[tuple[str, np.ndarray | None, dict]]:
        """The speaker's take of each of ``words``.

        Args:
            speaker: Who speaks, with their room and microphone.
            words: What they say.

        Yields:
            ``(word, samples, record)``: samples ``(16000,)`` float32 in [-1, 1], or None for a
            take that ``check_words`` left out; the record of everything drawn for it.
        """
        room = None
        if speaker.room is not None:
            room = room_impulse_response(speaker.room, rng(self.config.seed, Stream.ROOM, speaker.index))
        microphone = None if speaker.microphone is None else microphone_response(speaker.microphone)
        for word in words:
            draw = rng(self.config.seed, Stream.CLIP, speaker.index, word_key(word))
            samples, record = self._take(speaker, word, draw, room, microphone)
            yield word, samples, record

    def _take(
        self,
        speaker: Speaker,
        word: str,
        draw: np.random.Generator,
        room: np.ndarray | None,
        microphone: np.ndarray | None,
    ) -> tuple[np.ndarray | None, dict]:
        """One take of ``word`` through the speaker's room and microphone, and its record; samples
        None (the record still made) if ``check_words`` left it out."""
        from scipy.signal import fftconvolve, sosfilt

        pert = self.config.perturbations
        speech, synthesis = self._speak(speaker, word, draw)
        who = {"engine": speaker.engine, "voice": speaker.voice, "speaker": speaker.id, "split": speaker.split}
        if speech is None:
            return None, {**who, **synthesis}
        canvas, active, placement = self._place(speech / max(rms(speech), 1e-9), draw)
        if room is not None:
            canvas = fftconvolve(canvas, room)[:CLIP_SAMPLES]
        noise = None
        if draw.random() < pert.noise_probability:
            crop, noise = self._noise_crop(draw)
            noise["snr_db"] = uniform(draw, pert.snr_db)
            canvas = canvas + crop * rms(canvas[active]) / db_gain(noise["snr_db"])
        if microphone is not None:
            canvas = sosfilt(microphone, canvas)
        samples, finish = self._finish(canvas, active, draw)
        record = {
            **who,
            **synthesis,
            **placement,
            "room": speaker.room,
            "noise": noise,
            "microphone": speaker.microphone,
            **finish,
        }
        return samples, record

    def _speak(self, speaker: Speaker, word: str, draw: np.random.Generator) -> tuple[np.ndarray | None, dict]:
        """The clean take with this take's rate and pitch jitter and intonation, and its settings
        (``check``: what the recognizer heard at each attempt); None if it never heard the word."""
        pert = self.config.perturbations
        jitter = (1 / pert.take_jitter, pert.take_jitter)
        heard = []
        # The recognizer listens for the set's words only; other words are kept as spoken.
        recognizer = self.recognizer if word in self.config.word_list else None
        for attempt in range(_CHECK_ATTEMPTS if recognizer else 1):
            # The first take draws from the clip's own generator, as without the check.
            take = draw
            if attempt:
                take = rng(self.config.seed, Stream.RETAKE, speaker.index, word_key(word), attempt)
            rate = round(speaker.rate * log_uniform(take, jitter), 4)
            pitch = round(speaker.pitch * log_uniform(take, jitter), 4)
            text = word + _INTONATIONS[int(take.integers(len(_INTONATIONS)))]
            speech, synthesis = speak(
                self.engines[speaker.engine],
                text,
                speaker.voice,
                rate=rate,
                pitch=pitch,
                intonation=speaker.intonation,
                vocal_tract=speaker.vocal_tract,
            )
            settings = {"text": text, **synthesis}
            if recognizer is None:
                return speech, settings
            heard.append(recognizer(speech))
            if heard[-1] == word:
                return speech, {**settings, "check": heard}
        return None, {**settings, "check": heard}

    def _place(self, speech: np.ndarray, draw: np.random.Generator) -> tuple[np.ndarray, slice, dict]:
        """The one-second canvas with the speech (and maybe a breath) at a random position."""
        pert = self.config.perturbations
        breathing = None
        parts = [speech]
        if draw.random() < pert.breath_probability:
            breathing = {
                "position": "before" if draw.random() < 0.5 else "after",
                "seconds": uniform(draw, (0.15, 0.35)),
                "gap_seconds": uniform(draw, (0.03, 0.2)),
                "level_db": uniform(draw, pert.breath_db),
            }
            sound = breath(breathing["seconds"], draw) * db_gain(breathing["level_db"])
            gap = np.zeros(int(breathing["gap_seconds"] * SAMPLE_RATE))
            parts = [sound, gap, speech] if breathing["position"] == "before" else [speech, gap, sound]
            if sum(len(p) for p in parts) > CLIP_SAMPLES:
                parts, breathing = [speech], None
        segment = np.concatenate(parts)
        onset = int(draw.integers(0, CLIP_SAMPLES - len(segment) + 1))
        canvas = np.zeros(CLIP_SAMPLES)
        canvas[onset : onset + len(segment)] = segment
        start = onset + len(segment) - len(speech) if breathing and breathing["position"] == "before" else onset
        placement = {
            "speech_seconds": round(len(speech) / SAMPLE_RATE, 4),
            "onset_seconds": round(start / SAMPLE_RATE, 4),
            "breath": breathing,
        }
        return canvas, slice(start, start + len(speech)), placement

    def _noise_crop(self, draw: np.random.Generator) -> tuple[np.ndarray, dict]:
        """A one-second stretch of a background recording, unit RMS, and where it came from."""
        kinds = sorted(self.noise_bank)
        kind = kinds[int(draw.integers(len(kinds)))]
        recording = self.noise_bank[kind]
        offset = int(draw.integers(0, len(recording) - CLIP_SAMPLES + 1))
        crop = recording[offset : offset + CLIP_SAMPLES].astype(np.float64)
        return crop / max(rms(crop), 1e-9), {"kind": kind, "offset_samples": offset}

    def _finish(self, samples: np.ndarray, active: slice, draw: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Set the level of the speech, add the electrical noise floor, maybe clip."""
        pert = self.config.perturbations
        peak = max(np.abs(samples).max(), 1e-9)
        clipping = None
        if draw.random() < pert.clipping_probability:
            clipping = {"drive_db": uniform(draw, pert.clipping_drive_db), "soft": bool(draw.random() < 0.5)}
            gain = db_gain(clipping["drive_db"]) / peak
        else:
            # A take without a clipping draw must not clip: a loud draw is turned down instead.
            gain = min(db_gain(uniform(draw, pert.level_dbfs)) / max(rms(samples[active]), 1e-9), 0.98 / peak)
        samples = samples * gain
        crop, floor = self._noise_crop(draw)
        floor["level_dbfs"] = uniform(draw, pert.noise_floor_dbfs)
        samples = samples + crop * db_gain(floor["level_dbfs"])
        if clipping is not None:
            samples = np.tanh(samples) if clipping["soft"] else np.clip(samples, -1.0, 1.0)
        return samples.astype(np.float32), {
            "level_dbfs": round(20 * math.log10(max(rms(samples[active]), 1e-9)), 2),
            "noise_floor": floor,
            "clipping": clipping,
        }
