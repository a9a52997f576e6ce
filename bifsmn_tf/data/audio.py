"""Audio file I/O: the one place that knows WAV quirks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bifsmn_tf.fileio import atomic_path

SAMPLE_RATE = 16000


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [-1, 1] as 16-bit PCM WAV, atomically.

    Values outside [-1, 1] are clipped (a clipped recording is what a real microphone gives).
    """
    import soundfile as sf

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"{path}: expected mono samples of shape (n,), got {samples.shape}")
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)
