"""The feature frontend: BiFSMN's torchaudio log-mel spectrogram (or MFCCs) as a Keras layer.

The official BiFSMN code feeds the network ``AmplitudeToDB()(MelSpectrogram(sample_rate=16000,
n_fft=2048, hop_length=512, n_mels=32, normalized=True)(clip))`` on 1-s clips. The defaults of
:class:`FeatureConfig` reproduce that exactly:

- the clip is truncated or right-zero-padded to ``clip_samples``;
- ``center=True``: reflect padding of ``n_fft // 2`` samples on each side, so frame ``t`` is centred
  on sample ``t * hop_length`` and there are ``1 + clip_samples // hop_length`` frames;
- a periodic Hann window of ``win_length`` samples, zero-padded symmetrically to ``n_fft`` (as
  ``torch.stft`` does when ``win_length < n_fft``);
- the power spectrum ``|STFT|^2``, divided by ``sum(window^2)`` when ``normalized`` (torchaudio's
  ``normalized=True`` divides the STFT by the window's L2 norm);
- ``n_mels`` triangular filters, spaced evenly on the HTK mel scale but built in the Hz domain with
  no area normalisation (torchaudio's ``melscale_fbanks(norm=None, mel_scale="htk")``, identical to
  ``librosa.filters.mel(htk=True, norm=None)``). ``tf.signal.linear_to_mel_weight_matrix`` builds
  its triangles in the mel domain and drops the DC bin, so it is deliberately not used;
- ``10 * log10(max(S, power_floor))`` with reference 1 and no ``top_db`` clipping, so silence is
  ``-100`` dB, not ``-inf``.

With ``kind="mfcc"`` the log-mel frames are followed by an orthonormal DCT-II keeping ``n_mfcc``
coefficients (torchaudio's ``MFCC`` minus its 80 dB ``top_db`` floor; kws_streaming's order of
log then DCT).

The layers are made of ops that the TFLite and LCE converters turn into builtins (``MIRROR_PAD``,
``GATHER``/``STRIDED_SLICE`` for framing, ``RFFT2D``, ``REAL``/``IMAG``, ``FULLY_CONNECTED``/
``BATCH_MATMUL``, ``LOG``), so a deployed model can take raw audio without Flex ops. TFLite's
``RFFT2D`` only takes power-of-two lengths, hence the check on ``n_fft``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from bifsmn_tf.config import ConfigError, JsonConfig

FEATURE_KINDS = ("logmel", "mfcc")


@dataclasses.dataclass(frozen=True)
class FeatureConfig(JsonConfig):
    """Settings of the waveform → features frontend; the defaults are the official BiFSMN ones.

    Attributes:
        sample_rate: Hz of the input waveforms.
        clip_samples: Clips are truncated or right-zero-padded to this many samples.
        n_fft: FFT length in samples (a power of two, for TFLite's ``RFFT2D``).
        win_length: Hann window length in samples; ``None`` means ``n_fft``. A shorter window is
            zero-padded symmetrically to ``n_fft``.
        hop_length: Samples between the starts of consecutive frames.
        n_mels: Number of mel filters.
        f_min: Lowest filter edge in Hz.
        f_max: Highest filter edge in Hz; ``None`` means ``sample_rate / 2``.
        center: Reflect-pad ``n_fft // 2`` samples on each side so frames are centred on
            ``t * hop_length``; otherwise frames start at ``t * hop_length`` with no padding.
        normalized: Divide the power spectrum by ``sum(window**2)`` (torchaudio's
            ``normalized=True``).
        power_floor: Mel powers are clamped to at least this before the log (torchaudio's
            ``amin``); ``1e-10`` puts silence at -100 dB.
        kind: ``"logmel"`` (dB mel powers) or ``"mfcc"`` (orthonormal DCT-II of those).
        n_mfcc: Cepstral coefficients kept when ``kind == "mfcc"``.
        per_bin_mean_removal: Subtract from every feature its mean over the clip's frames
            (cepstral mean normalisation, for MFCCs). A fixed gain per band -- a voice's
            timbre, a microphone's colouring -- is then gone before the network sees it; on the
            synthetic set it lifts a teacher's accuracy on speech engines it never heard
            (BENCHMARKS.md, "Levers tried on generator-version-2 sets"). Not in the official
            code, so off by default.
    """

    sample_rate: int = 16000
    clip_samples: int = 16000
    n_fft: int = 2048
    win_length: int | None = None
    hop_length: int = 512
    n_mels: int = 32
    f_min: float = 0.0
    f_max: float | None = None
    center: bool = True
    normalized: bool = True
    power_floor: float = 1e-10
    kind: str = "logmel"
    n_mfcc: int = 13
    per_bin_mean_removal: bool = False

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"FeatureConfig: {message}")

        for name in ("sample_rate", "clip_samples", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(f"{name} must be a positive integer, got {value!r}")
        if self.n_fft & (self.n_fft - 1):
            fail(f"n_fft must be a power of two (TFLite's RFFT2D needs one), got {self.n_fft}")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            fail(f"win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}")
        if not 0 <= self.f_min < self.upper_frequency <= self.sample_rate / 2:
            fail(
                f"need 0 <= f_min < f_max <= sample_rate/2 = {self.sample_rate / 2}, "
                f"got f_min={self.f_min}, f_max={self.f_max}"
            )
        if self.center and self.n_fft // 2 >= self.clip_samples:
            fail(f"reflect padding of n_fft//2 = {self.n_fft // 2} needs clip_samples > that, got {self.clip_samples}")
        if not self.center and self.n_fft > self.clip_samples:
            fail(f"center=False needs clip_samples >= n_fft = {self.n_fft}")
        if not self.power_floor > 0:
            fail(f"power_floor must be > 0, got {self.power_floor}")
        if self.kind not in FEATURE_KINDS:
            fail(f"kind must be one of {FEATURE_KINDS}, got {self.kind!r}")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            fail(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")

    @property
    def window_samples(self) -> int:
        """The Hann window's length before its zero-padding to ``n_fft``."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def upper_frequency(self) -> float:
        """``f_max`` with ``None`` resolved to the Nyquist frequency."""
        return self.sample_rate / 2 if self.f_max is None else self.f_max

    @property
    def num_frames(self) -> int:
        """Frames per clip: the T of the ``(B, T, F)`` features (32 for the defaults)."""
        if self.center:
            return 1 + self.clip_samples // self.hop_length
        return 1 + (self.clip_samples - self.n_fft) // self.hop_length

    @property
    def num_features(self) -> int:
        """Values per frame: the F of the ``(B, T, F)`` features (32 for the defaults)."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def summary(self) -> str:
        """One line for reports: what the network sees."""
        per_ms = self.sample_rate / 1000
        kind = f"{self.n_mfcc} MFCCs of " if self.kind == "mfcc" else ""
        removal = ", each bin's mean over the clip removed" if self.per_bin_mean_removal else ""
        return (
            f"{kind}{self.n_mels} log-mel bins, {self.window_samples / per_ms:g} ms window, "
            f"{self.hop_length / per_ms:g} ms hop ({self.num_frames} frames){removal}"
        )


def ms_to_samples(ms: float, sample_rate: int) -> int:
    """``ms`` milliseconds as a whole number of samples at ``sample_rate`` Hz (the command line
    takes times in milliseconds; :class:`FeatureConfig` holds samples).

    Raises:
        ConfigError: ``ms`` is not a whole number of samples at that rate.
    """
    samples = ms * sample_rate / 1000
    if not math.isclose(samples, round(samples), abs_tol=1e-6):
        raise ConfigError(
            f"{ms:g} ms is {samples:g} samples at {sample_rate} Hz; give a whole number of samples "
            f"(a multiple of {1000 / sample_rate:g} ms)"
        )
    return round(samples)


def _hz_to_htk_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _htk_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """``(n_fft // 2 + 1, n_mels)`` triangles: HTK-spaced edges, linear in Hz, peak 1."""
    bin_hz = np.linspace(0.0, config.sample_rate // 2, config.n_fft // 2 + 1)
    edges_mel = np.linspace(_hz_to_htk_mel(config.f_min), _hz_to_htk_mel(config.upper_frequency), config.n_mels + 2)
    edges_hz = _htk_mel_to_hz(edges_mel)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _padded_hann_window(config: FeatureConfig) -> np.ndarray:
    """Periodic Hann window of ``window_samples``, centred in ``n_fft`` zeros (as torch.stft)."""
    length = config.window_samples
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    left = (config.n_fft - length) // 2
    return np.pad(hann, (left, config.n_fft - length - left))


def _orthonormal_dct_ii(n_inputs: int, n_outputs: int) -> np.ndarray:
    """``(n_inputs, n_outputs)`` ``D`` with ``x @ D == dct(x, norm="ortho")[..., :n_outputs]``."""
    n = np.arange(n_inputs)[:, None]
    k = np.arange(n_outputs)[None, :]
    dct = np.sqrt(2.0 / n_inputs) * np.cos(np.pi / n_inputs * (n + 0.5) * k)
    dct[:, 0] /= np.sqrt(2.0)
    return dct


@tf.keras.utils.register_keras_serializable(package="bifsmn_tf")
class LogMelSpectrogram(tf.keras.layers.Layer):
    """Waveforms to dB mel spectrograms, as torchaudio ``MelSpectrogram`` + ``AmplitudeToDB`` do.

    Agrees with librosa and with a float64 transcription of torchaudio's formulas to within
    1e-3 dB on every frame and band (measured at most 1.1e-4 dB: float32 STFT rounding), in
    Keras and after TFLite/LCE conversion; see ``tests/test_features.py``.

    Args:
        config: A :class:`FeatureConfig` with ``kind == "logmel"``.

    Input shape:
        ``(batch, samples)`` float waveforms in [-1, 1] at ``config.sample_rate``; any length,
        fixed to ``config.clip_samples`` by truncation or right zero-padding.

    Output shape:
        ``(batch, config.num_frames, config.num_features)`` float32, time first.
    """

    kind: ClassVar[str] = "logmel"

    def __init__(self, config: FeatureConfig | None = None, **kwargs: Any) -> None:
        # Powers down to 1e-10 and a 2048-point FFT need float32 even under a mixed policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.config = FeatureConfig(kind=self.kind) if config is None else config
        if self.config.kind != self.kind:
            raise ValueError(
                f"{type(self).__name__} needs FeatureConfig(kind={self.kind!r}), got "
                f"kind={self.config.kind!r}; build_frontend(config) picks the matching layer"
            )
        window = _padded_hann_window(self.config)
        filterbank = _mel_filterbank(self.config)
        if self.config.normalized:
            # |STFT / ||w|| |^2 = |STFT|^2 / sum(w^2): folded into the filterbank, one op fewer.
            filterbank = filterbank / np.sum(window**2)
        self._window = window.astype(np.float32)
        self._filterbank = filterbank.astype(np.float32)
        self._log_to_db = np.float32(10.0 / math.log(10.0))

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        config = self.config
        waveforms = tf.cast(waveforms, tf.float32)
        if waveforms.shape.rank != 2:
            raise ValueError(
                f"{type(self).__name__} expects waveforms of shape (batch, samples), got shape {waveforms.shape}"
            )
        clip = self._fixed_length(waveforms)
        if config.center:
            half = config.n_fft // 2
            clip = tf.pad(clip, [[0, 0], [half, half]], mode="REFLECT")
        frames = tf.signal.frame(clip, config.n_fft, config.hop_length, pad_end=False)
        spectrum = tf.signal.rfft(frames * self._window, fft_length=[config.n_fft])
        power = tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))
        mel_power = tf.matmul(power, self._filterbank)
        db = self._log_to_db * tf.math.log(tf.maximum(mel_power, config.power_floor))
        if config.per_bin_mean_removal:
            # Before the DCT of Mfcc: removing the mean commutes with a linear map.
            db = db - tf.reduce_mean(db, axis=1, keepdims=True)
        return db

    def _fixed_length(self, waveforms: tf.Tensor) -> tf.Tensor:
        target = self.config.clip_samples
        length = waveforms.shape[1]
        if length is None:
            waveforms = waveforms[:, :target]
            shortfall = tf.maximum(0, target - tf.shape(waveforms)[1])
            waveforms = tf.pad(waveforms, [[0, 0], [0, shortfall]])
            return tf.ensure_shape(waveforms, [None, target])
        if length >= target:
            return waveforms[:, :target]
        return tf.pad(waveforms, [[0, 0], [0, target - length]])

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape([input_shape[0], self.config.num_frames, self.config.num_features])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LogMelSpectrogram:
        config = dict(config)
        feature_config = FeatureConfig.from_dict(config.pop("config"))
        return cls(feature_config, **config)


@tf.keras.utils.register_keras_serializable(package="bifsmn_tf")
class Mfcc(LogMelSpectrogram):
    """Waveforms to MFCCs: the :class:`LogMelSpectrogram` dB frames, then an orthonormal DCT-II.

    Args:
        config: A :class:`FeatureConfig` with ``kind == "mfcc"``; ``n_mfcc`` coefficients are kept.

    Input shape:
        ``(batch, samples)`` float waveforms, as for :class:`LogMelSpectrogram`.

    Output shape:
        ``(batch, config.num_frames, config.n_mfcc)`` float32, time first.
    """

    kind: ClassVar[str] = "mfcc"

    def __init__(self, config: FeatureConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._dct = _orthonormal_dct_ii(self.config.n_mels, self.config.n_mfcc).astype(np.float32)

    def call(self, waveforms: tf.Tensor) -> tf.Tensor:
        return tf.matmul(super().call(waveforms), self._dct)


def build_frontend(config: FeatureConfig, **layer_kwargs: Any) -> LogMelSpectrogram:
    """The frontend layer for ``config.kind``: :class:`LogMelSpectrogram` or :class:`Mfcc`."""
    layer_class = Mfcc if config.kind == "mfcc" else LogMelSpectrogram
    return layer_class(config, **layer_kwargs)
