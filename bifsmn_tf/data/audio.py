"""Audio file I/O: the one place that knows WAV quirks.

Reading always returns float32 mono samples in [-1, 1]. What happens to input that is not
16-bit PCM mono at the expected rate is fixed here, once, and documented:

==========================  ================================================================
input                       result
==========================  ================================================================
8/16/24/32-bit PCM WAV      scaled to [-1, 1) (unsigned 8-bit is re-centred on 128)
32/64-bit float WAV         values kept; samples outside [-1, 1] are clipped; NaN/inf: error
several channels            averaged to mono
another sample rate         ``AudioFormatError`` unless ``resample=True`` (then band-limited
                            resampling with ``tensorflow_io.audio.resample``)
FLAC / Ogg Vorbis / MP3     decoded with ``tensorflow_io`` (``read_audio`` only)
empty / truncated / other   ``AudioFormatError`` naming the file and what is wrong
==========================  ================================================================

WAV is parsed here rather than by a library so that a truncated file (a header that promises
more audio than the file holds) is an error instead of a silently shorter clip.
"""

from __future__ import annotations

import atexit
import functools
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bifsmn_tf.fileio import atomic_path

SAMPLE_RATE = 16000

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# Leading bytes of the compressed formats tensorflow_io decodes.
_MAGIC_FLAC = b"fLaC"
_MAGIC_OGG = b"OggS"
_MAGIC_ID3 = b"ID3"


class _WavFormat(NamedTuple):
    encoding: int
    sample_rate: int
    channels: int
    bits: int
    block_align: int


class AudioFormatError(ValueError):
    """An audio file cannot be read as the clip it should be; the message names the file."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [-1, 1] as 16-bit PCM WAV, atomically.

    Values outside [-1, 1] are clipped (a clipped recording is what a real microphone gives).
    The bytes are the ones libsndfile writes, but written here: libsndfile reports a full disk as
    "System error.", and a caller must be able to tell the user "No space left on device".
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"{path}: expected mono samples of shape (n,), got {samples.shape}")
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        _WAVE_FORMAT_PCM,
        1,
        sample_rate,
        2 * sample_rate,
        2,
        16,
        b"data",
        len(pcm),
    )
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + pcm)
    return Path(path)


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE, *, resample: bool = False) -> np.ndarray:
    """Read a WAV file as float32 mono samples in [-1, 1], shape ``(n,)``.

    Args:
        path: the WAV file.
        sample_rate: the rate the caller needs.
        resample: convert another rate to ``sample_rate`` instead of raising.

    Raises:
        AudioFormatError: the file is missing, empty, truncated, not a WAV file, in an
            unsupported encoding, or at another rate while ``resample`` is false.
    """
    path = Path(path)
    samples, rate = _decode_wav(path, _read_bytes(path))
    return _at_rate(path, samples, rate, sample_rate, resample)


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, *, resample: bool = False) -> np.ndarray:
    """Like :func:`read_wav`, but also FLAC, Ogg Vorbis and MP3 (decoded by tensorflow_io).

    The format is recognised from the file's first bytes, not its name.
    """
    path = Path(path)
    data = _read_bytes(path)
    head = data[:12]
    if head[:4] == b"RIFF":
        samples, rate = _decode_wav(path, data)
    elif head[:4] in (_MAGIC_FLAC, _MAGIC_OGG) or head[:3] == _MAGIC_ID3 or _is_mpeg_frame(head):
        samples, rate = _decode_with_tfio(path)
    else:
        raise AudioFormatError(
            path,
            f"not a supported audio file (WAV, FLAC, Ogg Vorbis or MP3); starts with {head[:8]!r}",
        )
    return _at_rate(path, samples, rate, sample_rate, resample)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioFormatError(path, "is a directory, not an audio file") from None
    except OSError as err:
        raise AudioFormatError(path, f"cannot read it ({err.strerror or err})") from None
    if not data:
        raise AudioFormatError(path, "empty file (0 bytes)")
    return data


def _decode_wav(path: Path, data: bytes) -> tuple[np.ndarray, int]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(path, f"not a RIFF/WAVE file; starts with {data[:12]!r}")
    fmt: _WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (chunk_size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_size > len(data) - body and chunk_id in (b"fmt ", b"data"):
            what = "audio" if chunk_id == b"data" else "format"
            raise AudioFormatError(
                path,
                f"truncated WAV: the header declares {chunk_size} bytes of {what}, the file holds {len(data) - body}",
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(path, data[body : body + chunk_size])
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError(path, "WAV 'data' chunk comes before its 'fmt ' chunk")
            return _pcm_to_float(path, data[body : body + chunk_size], fmt), fmt.sample_rate
        pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise AudioFormatError(path, "truncated WAV: no 'fmt ' chunk")
    raise AudioFormatError(path, "truncated WAV: no 'data' chunk")


def _parse_fmt(path: Path, chunk: bytes) -> _WavFormat:
    if len(chunk) < 16:
        raise AudioFormatError(path, f"malformed WAV 'fmt ' chunk ({len(chunk)} bytes)")
    encoding, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    if encoding == _WAVE_FORMAT_EXTENSIBLE and len(chunk) >= 26:
        (encoding,) = struct.unpack_from("<H", chunk, 24)  # first field of the sub-format GUID
    if encoding not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_IEEE_FLOAT):
        raise AudioFormatError(path, f"unsupported WAV encoding 0x{encoding:04x} (only PCM and IEEE float)")
    supported_bits = (8, 16, 24, 32) if encoding == _WAVE_FORMAT_PCM else (32, 64)
    if bits not in supported_bits or channels < 1 or rate < 1:
        raise AudioFormatError(path, f"unsupported WAV layout: {bits}-bit, {channels} channel(s), {rate} Hz")
    if block_align != channels * bits // 8:
        raise AudioFormatError(path, f"malformed WAV: block align {block_align} for {channels} x {bits}-bit")
    return _WavFormat(encoding, rate, channels, bits, block_align)


def _pcm_to_float(path: Path, raw: bytes, fmt: _WavFormat) -> np.ndarray:
    encoding, _, channels, bits, block_align = fmt
    if not raw:
        raise AudioFormatError(path, "WAV holds no audio samples")
    if len(raw) % block_align:
        raise AudioFormatError(path, f"truncated WAV: {len(raw)} bytes of audio is not a whole number of frames")
    if encoding == _WAVE_FORMAT_IEEE_FLOAT:
        samples = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise AudioFormatError(path, "float WAV contains NaN or infinite samples")
        samples = np.clip(samples, -1.0, 1.0)
    elif bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        as_int = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        as_int = np.where(as_int >= 1 << 23, as_int - (1 << 24), as_int)
        samples = as_int.astype(np.float32) / float(1 << 23)
    else:
        samples = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)


def _is_mpeg_frame(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def _decode_with_tfio(path: Path) -> tuple[np.ndarray, int]:
    import tensorflow as tf
    import tensorflow_io as tfio

    try:
        audio = tfio.audio.AudioIOTensor(str(path))
        rate = int(audio.rate.numpy())
        samples = audio.to_tensor().numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as err:
        raise AudioFormatError(path, f"cannot decode: {err.message.splitlines()[-1]}") from None
    if samples.size == 0:
        raise AudioFormatError(path, "holds no audio samples")
    if samples.dtype == np.int16:
        scaled = samples.astype(np.float32) / 32768.0
    elif samples.dtype == np.int32:  # tensorflow_io left-justifies 24-bit FLAC in int32
        scaled = (samples.astype(np.float64) / float(1 << 31)).astype(np.float32)
    else:
        scaled = np.clip(samples.astype(np.float32), -1.0, 1.0)
    return scaled.mean(axis=1, dtype=np.float32), rate


def _at_rate(path: Path, samples: np.ndarray, rate: int, wanted: int, resample: bool) -> np.ndarray:
    if rate == wanted:
        return samples
    if not resample:
        raise AudioFormatError(path, f"sample rate is {rate} Hz, expected {wanted} Hz")
    return _resample(samples, rate, wanted)


def _resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    import tensorflow as tf

    resampled = _resampler()(
        tf.constant(samples[:, None]),
        tf.constant(rate_in, tf.int64),
        tf.constant(rate_out, tf.int64),
    )
    return np.clip(resampled.numpy()[:, 0], -1.0, 1.0)


@functools.lru_cache(maxsize=1)
def _resampler():
    """One traced tensorflow_io resampler for every rate pair (tracing per call is slow)."""
    import tensorflow as tf
    import tensorflow_io as tfio

    # Dropped before interpreter shutdown: a traced function collected after TensorFlow's
    # modules are torn down prints a spurious TypeError.
    atexit.register(_resampler.cache_clear)
    return tf.function(
        lambda samples, rate_in, rate_out: tfio.audio.resample(samples, rate_in=rate_in, rate_out=rate_out),
        input_signature=[
            tf.TensorSpec([None, 1], tf.float32),
            tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.int64),
        ],
    )
