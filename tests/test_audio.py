"""Reading audio: every WAV encoding, other formats, resampling, and clear errors on bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.data.audio import AudioFormatError, read_audio, read_wav, write_wav

RATE = 16000


def _sweep(seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.6 * np.sin(2 * np.pi * (300 + 900 * t) * t)).astype(np.float32)


def _dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [
        ("PCM_U8", 1 / 128),
        ("PCM_16", 1 / 32768),
        ("PCM_24", 1 / 2**23),
        ("PCM_32", 1e-7),
        ("FLOAT", 1e-7),
        ("DOUBLE", 1e-7),
    ],
)
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_every_wav_encoding_reads_as_float(tmp_path, subtype, tolerance, container):
    samples = _sweep()
    path = tmp_path / "clip.wav"
    sf.write(path, samples, RATE, subtype=subtype, format=container)
    decoded = read_wav(path)
    assert decoded.dtype == np.float32 and decoded.shape == samples.shape
    np.testing.assert_allclose(decoded, samples, atol=tolerance)
    np.testing.assert_array_equal(read_audio(path), decoded)


def test_write_then_read_round_trip(tmp_path):
    samples = _sweep()
    decoded = read_wav(write_wav(tmp_path / "clip.wav", samples))
    np.testing.assert_allclose(decoded, samples, atol=2 / 32768)


@pytest.mark.parametrize("rate", [8000, RATE, 44100])
def test_written_bytes_are_libsndfiles(tmp_path, rate):
    # The synthetic set was written by libsndfile: the same seed must keep giving the same files.
    samples = np.concatenate([_sweep(), [1.5, -1.5, 0.0]]).astype(np.float32)
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(tmp_path / "libsndfile.wav", pcm, rate, subtype="PCM_16", format="WAV")
    written = write_wav(tmp_path / "ours.wav", samples, rate)
    assert written.read_bytes() == (tmp_path / "libsndfile.wav").read_bytes()


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = _sweep(), 0.25 * np.ones(RATE // 2, np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="PCM_16")
    np.testing.assert_allclose(read_wav(path), (left + right) / 2, atol=1 / 32768)


def test_float_wav_outside_range_is_clipped_and_nan_rejected(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([0.5, 1.5, -2.0], np.float32), RATE, subtype="FLOAT")
    np.testing.assert_array_equal(read_wav(path), [0.5, 1.0, -1.0])
    sf.write(path, np.array([0.5, np.nan], np.float32), RATE, subtype="FLOAT")
    with pytest.raises(AudioFormatError, match="loud.wav: float WAV contains NaN"):
        read_wav(path)


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"".join(
        name + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"") for name, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _fmt(channels: int = 1, rate: int = RATE, bits: int = 16, encoding: int = 1) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", encoding, channels, rate, rate * align, align, bits)


def test_odd_sized_chunks_before_the_audio_are_skipped(tmp_path):
    pcm = np.array([0, 16384, -16384, 32767], "<i2")
    path = tmp_path / "tagged.wav"
    path.write_bytes(_riff((b"fmt ", _fmt()), (b"LIST", b"INFOabc"), (b"data", pcm.tobytes())))
    np.testing.assert_array_equal(read_wav(path), pcm / 32768.0)


def test_other_sample_rate_is_an_error_unless_resampling(tmp_path):
    path = tmp_path / "cd.wav"
    tone = np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100).astype(np.float32) * 0.5
    sf.write(path, tone, 44100, subtype="PCM_16")
    with pytest.raises(AudioFormatError, match=r"cd.wav: sample rate is 44100 Hz, expected 16000"):
        read_wav(path)
    resampled = read_wav(path, resample=True)
    assert abs(len(resampled) - RATE) <= 1
    assert abs(_dominant_hz(resampled) - 1000) < 5
    assert np.max(np.abs(resampled)) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("fmt", "subtype", "exact"),
    [
        ("FLAC", "PCM_16", True),
        ("FLAC", "PCM_24", True),
        ("OGG", "VORBIS", False),
        ("MP3", "MPEG_LAYER_III", False),
    ],
)
def test_compressed_formats_decode_with_tensorflow_io(tmp_path, fmt, subtype, exact):
    samples = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)).astype(np.float32)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, samples, RATE, format=fmt, subtype=subtype)
    decoded = read_audio(path)
    assert decoded.dtype == np.float32
    if exact:
        np.testing.assert_allclose(decoded, samples, atol=1 / 32768)
    else:  # lossy codecs: same length (to the codec's frame padding), tone and level
        assert abs(len(decoded) - len(samples)) < 2048
        assert abs(_dominant_hz(decoded) - 1000) < 5
        assert np.sqrt(np.mean(decoded**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    with pytest.raises(AudioFormatError, match="not a RIFF/WAVE file"):
        read_wav(path)


def test_compressed_at_another_rate_is_checked_too(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, _sweep(1.0, 22050), 22050, format="FLAC", subtype="PCM_16")
    with pytest.raises(AudioFormatError, match="sample rate is 22050 Hz"):
        read_audio(path)
    assert abs(len(read_audio(path, resample=True)) - RATE) <= 1


def _truncated_wav(path: Path) -> None:
    write_wav(path, _sweep())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _truncated_flac(path: Path) -> None:
    sf.write(path, _sweep(1.0), RATE, format="FLAC", subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _odd_frame_wav(path: Path) -> None:
    path.write_bytes(_riff((b"fmt ", _fmt(channels=2)), (b"data", b"\1\2\3\4\5\6")))


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("empty.wav", lambda p: p.write_bytes(b""), "empty file"),
        (
            "text.wav",
            lambda p: p.write_text("hello, I am not audio\n"),
            "not a supported audio file",
        ),
        ("cut.wav", _truncated_wav, "truncated WAV: the header declares"),
        ("frames.wav", _odd_frame_wav, "not a whole number of frames"),
        ("header.wav", lambda p: p.write_bytes(_riff((b"fmt ", _fmt()))[:30]), "truncated WAV"),
        (
            "nodata.wav",
            lambda p: p.write_bytes(_riff((b"fmt ", _fmt()), (b"data", b""))),
            "no audio samples",
        ),
        (
            "alaw.wav",
            lambda p: p.write_bytes(_riff((b"fmt ", _fmt(bits=8, encoding=6)), (b"data", b"\0"))),
            "unsupported WAV encoding 0x0006",
        ),
        ("cut.flac", _truncated_flac, "cannot decode"),
        ("missing.wav", lambda p: None, "file not found"),
        ("folder.wav", lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path, name, make, problem):
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioFormatError, match=problem) as caught:
        read_audio(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert caught.value.path == path


REAL_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-speech"


@pytest.mark.skipif(not REAL_SPEECH.is_dir(), reason="no real-speech clips next to the repository")
@pytest.mark.parametrize("name", ["yes_1000ms.wav", "no_1000ms.wav", "noise_1000ms.wav"])
def test_real_recordings_read_as_soundfile_does(name):
    path = REAL_SPEECH / name
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(read_wav(path), pcm.astype(np.float32) / 32768.0)
