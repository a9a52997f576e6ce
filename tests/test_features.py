"""The feature frontend against independent computations, and through TFLite/LCE conversion.

References: (a) librosa (``htk=True, norm=None, center=True, pad_mode="reflect"``, power 2) with the
window-energy normalisation applied by hand, and (b) a float64 NumPy transcription of torchaudio's
``Spectrogram(normalized=True)``, ``melscale_fbanks(norm=None, mel_scale="htk")`` and
``amplitude_to_DB`` written below. Tolerance: max |difference| <= ``DB_TOLERANCE`` dB on every
frame and band (float32 STFT rounding; measured at most 1.1e-4 dB).
"""

from __future__ import annotations

import larq_compute_engine as lce
import librosa
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as tflite_schema

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.config import ConfigError
from bifsmn_tf.features import FeatureConfig, LogMelSpectrogram, Mfcc, build_frontend
from bifsmn_tf.tflite_ops import op_counts

DB_TOLERANCE = 1e-3
# The DCT sums n_mels dB values with weights of at most sqrt(2 / n_mels).
MFCC_TOLERANCE = 1e-2

OFFICIAL = FeatureConfig()
MEL40_30MS = FeatureConfig(n_fft=512, win_length=480, hop_length=160, n_mels=40)
MFCC40_30MS = MEL40_30MS.replace(kind="mfcc", n_mfcc=10)
BAND_LIMITED_UNCENTRED = FeatureConfig(
    n_fft=1024, win_length=640, hop_length=320, n_mels=24, f_min=60.0, f_max=7000.0, center=False
)
LOGMEL_CONFIGS = [OFFICIAL, MEL40_30MS, BAND_LIMITED_UNCENTRED]
CONFIG_IDS = ["official", "mel40-30ms", "band-limited-uncentred"]


def speech_like_clip(seed: int, samples: int = 16000) -> np.ndarray:
    """A rising harmonic tone, a noise burst and a quiet tail: wide spectral and level range."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    pitch = 120 + 80 * t
    tone = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / 16000) / k for k in range(1, 12))
    envelope = np.exp(-((t - 0.4) ** 2) / 0.02)
    burst = rng.standard_normal(samples) * (np.abs(t - 0.75) < 0.05)
    clip = 0.2 * tone * envelope + 0.1 * burst + 1e-3 * rng.standard_normal(samples)
    return clip.astype(np.float32)


def frontend_features(config: FeatureConfig, clips: np.ndarray) -> np.ndarray:
    return build_frontend(config)(clips).numpy()


def librosa_log_mel(config: FeatureConfig, clip: np.ndarray) -> np.ndarray:
    mel_power = librosa.feature.melspectrogram(
        y=clip.astype(np.float64),
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.window_samples,
        window="hann",
        center=config.center,
        pad_mode="reflect",
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.upper_frequency,
        htk=True,
        norm=None,
    )
    window = librosa.filters.get_window("hann", config.window_samples, fftbins=True)
    mel_power = mel_power / np.sum(window**2)
    return librosa.power_to_db(mel_power, ref=1.0, amin=1e-10, top_db=None).T


def torchaudio_log_mel(config: FeatureConfig, clip: np.ndarray) -> np.ndarray:
    """Torchaudio's MelSpectrogram(normalized=True) + AmplitudeToDB(), transcribed in float64."""
    x = clip.astype(np.float64)
    # torch.hann_window(periodic=True), centre-padded to n_fft by torch.stft.
    n = np.arange(config.window_samples)
    window = 0.5 * (1 - np.cos(2 * np.pi * n / config.window_samples))
    offset = (config.n_fft - config.window_samples) // 2
    window = np.concatenate([np.zeros(offset), window, np.zeros(config.n_fft - config.window_samples - offset)])
    if config.center:
        x = np.pad(x, config.n_fft // 2, mode="reflect")
    starts = range(0, len(x) - config.n_fft + 1, config.hop_length)
    stft = np.stack([np.fft.rfft(x[s : s + config.n_fft] * window) for s in starts])
    stft = stft / np.sqrt(np.sum(window**2))  # normalized=True ("window" mode)
    power = np.abs(stft) ** 2

    # melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk")
    all_freqs = np.linspace(0, config.sample_rate // 2, config.n_fft // 2 + 1)
    m_min = 2595.0 * np.log10(1.0 + config.f_min / 700.0)
    m_max = 2595.0 * np.log10(1.0 + config.upper_frequency / 700.0)
    f_pts = 700.0 * (10 ** (np.linspace(m_min, m_max, config.n_mels + 2) / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down_slopes = -slopes[:, :-2] / f_diff[:-1]
    up_slopes = slopes[:, 2:] / f_diff[1:]
    fbanks = np.maximum(0.0, np.minimum(down_slopes, up_slopes))

    mel_power = power @ fbanks
    return 10.0 * np.log10(np.clip(mel_power, 1e-10, None))  # amplitude_to_DB, ref 1


@pytest.mark.parametrize("config", LOGMEL_CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("reference", [librosa_log_mel, torchaudio_log_mel], ids=["librosa", "numpy"])
def test_log_mel_matches_independent_reference(config, reference):
    clips = np.stack([speech_like_clip(seed) for seed in range(2)])
    features = frontend_features(config, clips)
    for clip, clip_features in zip(clips, features):
        expected = reference(config, clip)
        assert expected.shape == clip_features.shape == (config.num_frames, config.n_mels)
        # The clips reach well below -40 dB, so the floor and the quiet bands are exercised.
        assert expected.min() < -40
        np.testing.assert_allclose(clip_features, expected, rtol=0, atol=DB_TOLERANCE)


def test_mfcc_is_orthonormal_dct_of_log_mel():
    clip = speech_like_clip(seed=3)
    expected = scipy.fft.dct(torchaudio_log_mel(MFCC40_30MS, clip), type=2, norm="ortho")
    expected = expected[:, : MFCC40_30MS.n_mfcc]
    features = frontend_features(MFCC40_30MS, clip[None])[0]
    np.testing.assert_allclose(features, expected, rtol=0, atol=MFCC_TOLERANCE)


@pytest.mark.parametrize(
    "config, frames, features",
    [
        (OFFICIAL, 32, 32),
        (MEL40_30MS, 101, 40),
        (MFCC40_30MS, 101, 10),
        (OFFICIAL.replace(kind="mfcc"), 32, 13),
        (BAND_LIMITED_UNCENTRED, 47, 24),
        (OFFICIAL.replace(clip_samples=8000, sample_rate=8000, n_fft=256, hop_length=80), 101, 32),
    ],
    ids=["official", "mel40-30ms", "mfcc40-30ms", "official-mfcc", "uncentred", "8khz"],
)
def test_output_shape_for_several_configs(config, frames, features):
    assert (config.num_frames, config.num_features) == (frames, features)
    layer = build_frontend(config)
    assert isinstance(layer, Mfcc if config.kind == "mfcc" else LogMelSpectrogram)
    clips = np.zeros((3, config.clip_samples), np.float32)
    clips[:, ::7] = 0.5
    out = layer(clips)
    assert out.dtype == tf.float32
    assert out.shape == (3, frames, features)
    assert tuple(layer.compute_output_shape(tf.TensorShape([3, config.clip_samples]))) == out.shape
    assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_silence_is_minus_100_db_not_nan(kind):
    config = OFFICIAL.replace(kind=kind)
    features = frontend_features(config, np.zeros((2, 16000), np.float32))
    assert np.isfinite(features).all()
    if kind == "logmel":
        np.testing.assert_allclose(features, -100.0, atol=1e-3)
    else:
        # A constant log-mel frame lands entirely in c0 = -100 * sqrt(n_mels).
        np.testing.assert_allclose(features[..., 0], -100.0 * np.sqrt(config.n_mels), atol=1e-2)
        np.testing.assert_allclose(features[..., 1:], 0.0, atol=1e-3)


@pytest.mark.parametrize("length", [9000, 16000, 23000])
@pytest.mark.parametrize("static_length", [True, False], ids=["static", "dynamic"])
def test_clips_are_truncated_or_right_zero_padded(length, static_length):
    clip = speech_like_clip(seed=5, samples=length)
    fixed = np.zeros(16000, np.float32)
    fixed[: min(length, 16000)] = clip[:16000]
    inputs = tf.keras.Input((length if static_length else None,))
    model = tf.keras.Model(inputs, LogMelSpectrogram(OFFICIAL)(inputs))
    np.testing.assert_allclose(model(clip[None]).numpy(), frontend_features(OFFICIAL, fixed[None]), rtol=0, atol=1e-4)


def test_layer_rejects_mismatched_kind_and_rank():
    with pytest.raises(ValueError, match=r"LogMelSpectrogram needs FeatureConfig\(kind='logmel'\)"):
        LogMelSpectrogram(MFCC40_30MS)
    with pytest.raises(ValueError, match=r"Mfcc needs FeatureConfig\(kind='mfcc'\)"):
        Mfcc(OFFICIAL)
    with pytest.raises(ValueError, match=r"shape \(batch, samples\)"):
        LogMelSpectrogram(OFFICIAL)(np.zeros((1, 16000, 1), np.float32))


@pytest.mark.parametrize("config", [OFFICIAL, MFCC40_30MS, BAND_LIMITED_UNCENTRED])
def test_config_json_round_trip(tmp_path, config):
    path = config.save(tmp_path / "features.json")
    loaded = FeatureConfig.load(path)
    assert loaded == config
    assert (loaded.num_frames, loaded.num_features) == (config.num_frames, config.num_features)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_fft": 480}, "n_fft must be a power of two"),
        ({"win_length": 4096}, "win_length must be in"),
        ({"f_max": 9000.0}, "need 0 <= f_min < f_max"),
        ({"f_min": 8000.0}, "need 0 <= f_min < f_max"),
        ({"kind": "spectrogram"}, "kind must be one of"),
        ({"kind": "mfcc", "n_mfcc": 33}, "n_mfcc \\(33\\) cannot exceed n_mels \\(32\\)"),
        ({"clip_samples": 1024}, "reflect padding"),
        ({"hop_length": 0}, "hop_length must be a positive integer"),
        ({"power_floor": 0.0}, "power_floor must be > 0"),
    ],
)
def test_invalid_config_is_a_clear_error(changes, message):
    with pytest.raises(ConfigError, match=f"FeatureConfig: {message}"):
        OFFICIAL.replace(**changes)


@pytest.mark.parametrize("config", [OFFICIAL, MFCC40_30MS], ids=["logmel", "mfcc"])
def test_model_with_frontend_saves_and_loads(tmp_path, config):
    inputs = tf.keras.Input((config.clip_samples,))
    features = build_frontend(config, name="frontend")(inputs)
    logits = tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(features))
    model = tf.keras.Model(inputs, logits)
    clips = np.stack([speech_like_clip(seed) for seed in range(2)])

    model.save(tmp_path / "model.keras")
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")

    assert loaded.get_layer("frontend").config == config
    assert type(loaded.get_layer("frontend")) is type(model.get_layer("frontend"))
    np.testing.assert_allclose(loaded(clips).numpy(), model(clips).numpy(), rtol=1e-6, atol=1e-5)


def keras_to_tflite(model: tf.keras.Model) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


@pytest.mark.parametrize("config", [OFFICIAL, MFCC40_30MS], ids=["logmel", "mfcc"])
def test_per_bin_mean_removal_subtracts_each_features_mean_over_the_clip(config):
    clips = np.stack([speech_like_clip(seed) for seed in range(3)])
    plain = frontend_features(config, clips)
    removed = frontend_features(config.replace(per_bin_mean_removal=True), clips)
    np.testing.assert_allclose(removed, plain - plain.mean(axis=1, keepdims=True), rtol=0, atol=1e-3)
    np.testing.assert_allclose(removed.mean(axis=1), 0.0, atol=1e-3)
    # A fixed gain per band (a microphone's colouring) no longer changes the features.
    louder = frontend_features(config.replace(per_bin_mean_removal=True), clips * 0.3)
    np.testing.assert_allclose(louder, removed, rtol=0, atol=2e-2)


@pytest.mark.parametrize(
    "config",
    [OFFICIAL, MFCC40_30MS, OFFICIAL.replace(per_bin_mean_removal=True)],
    ids=["logmel", "mfcc", "logmel-mean-removed"],
)
@pytest.mark.parametrize("convert", [keras_to_tflite, lce.convert_keras_model], ids=["tflite", "lce"])
def test_converts_to_builtins_and_runs_in_lce_interpreter(config, convert):
    inputs = tf.keras.Input((config.clip_samples,))
    model = tf.keras.Model(inputs, build_frontend(config)(inputs))
    flatbuffer = convert(model)

    ops = set(op_counts(flatbuffer))
    assert {"MIRROR_PAD", "RFFT2D", "LOG"} <= ops
    assert ("MEAN" in ops) == config.per_bin_mean_removal
    # Custom ops (Flex*, Lce*) are named by their custom code, which no builtin name matches.
    assert all(name in vars(tflite_schema.BuiltinOperator) for name in ops), ops

    interpreter = lce.testing.Interpreter(flatbuffer)
    for seed in range(2):
        clip = speech_like_clip(seed)[None]
        interpreted = interpreter.predict(clip)
        assert interpreted.shape == (1, config.num_frames, config.num_features)
        np.testing.assert_allclose(
            interpreted,
            model(clip).numpy(),
            rtol=0,
            atol=MFCC_TOLERANCE if config.kind == "mfcc" else DB_TOLERANCE,
        )
