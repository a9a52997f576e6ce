"""The batched augmentation against a NumPy transcription of the official per-clip transforms."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.config import ConfigError
from bifsmn_tf.data.augment import (
    DRAW_COLUMNS,
    NOISE_BLOCK,
    NUM_DRAWS,
    AugmentConfig,
    NoiseBank,
    augment_batch,
)

S = 16000
COLUMN = {name: i for i, name in enumerate(DRAW_COLUMNS)}
OFF = AugmentConfig(noise_prob=0.0, amplitude_prob=0.0, speed_prob=0.0, shift_prob=0.0)
f32 = np.float32


def official(clip: np.ndarray, draws: np.ndarray, config: AugmentConfig, noises: list) -> np.ndarray:
    """docs/design.md#augmentation on one unpadded clip, step by step as the official code does,
    then fixed length.

    float32 arithmetic where the index maths depends on rounding, as in the TF version.
    """
    d = dict(zip(DRAW_COLUMNS, draws.astype(f32), strict=True))
    w = clip.astype(f32)
    if d["noise_apply"] < config.noise_prob:
        noise = noises[min(int(d["noise_file"] * f32(len(noises))), len(noises) - 1)]
        last_start = len(noise) // NOISE_BLOCK - S // NOISE_BLOCK  # in blocks of NOISE_BLOCK
        offset = NOISE_BLOCK * min(int(d["noise_offset"] * f32(last_start + 1)), last_start)
        s = d["noise_scale"] * f32(config.noise_max_scale)
        w = (f32(1) - s) * w + s * noise[offset : offset + len(w)]
    if d["amplitude_apply"] < config.amplitude_prob:
        low, high = map(f32, config.amplitude_range)
        w = w * (low + (high - low) * d["amplitude"])
    if d["speed_apply"] < config.speed_prob:
        # torch.nn.functional.interpolate(scale_factor=1/(1+c), mode="nearest")
        stretch = f32(1) + f32(config.speed_max_scale) * (f32(2) * d["speed"] - f32(1))
        n = int(np.floor(f32(len(w)) / stretch))
        w = w[np.floor(np.arange(n, dtype=f32) * stretch).astype(int)]
    if d["shift_apply"] < config.shift_prob:
        width = 2 * config.shift_max_samples + 1
        shift = min(int(d["shift"] * f32(width)), width - 1) - config.shift_max_samples
        a, b = max(0, shift), max(0, -shift)  # TimeshiftAudio: pad, then cut back to length
        padded = np.pad(w, (a, b))
        w = padded[: len(w)] if a else padded[b:]
    return np.pad(w, (0, max(0, S - len(w))))[:S]


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(6000, S + 1, size=64).astype(np.int32)
    lengths[:2] = (S, 100)
    clips = [rng.uniform(-0.5, 0.5, n).astype(f32) for n in lengths]
    noises = [rng.uniform(-1, 1, n).astype(f32) for n in (3 * S, S, 5 * S + 7)]
    draws = rng.uniform(0, 1, (64, NUM_DRAWS)).astype(f32)
    # extremes of every draw, so the index maths is checked at its edges
    draws[2] = 0.0
    draws[3, :] = np.nextafter(f32(1), f32(0))
    draws[3, [COLUMN[c] for c in DRAW_COLUMNS if c.endswith("apply")]] = 0.0
    return clips, lengths, noises, draws


def _run(batch, config):
    clips, lengths, noises, draws = batch
    padded = np.stack([np.pad(c, (0, S - len(c))) for c in clips])
    bank = NoiseBank.from_arrays({f"noise{i}": n for i, n in enumerate(noises)}, S)
    out = augment_batch(tf.constant(padded), tf.constant(lengths), tf.constant(draws), config, bank)
    expected = np.stack([official(c, d, config, noises) for c, d in zip(clips, draws, strict=True)])
    return out.numpy(), expected, padded


@pytest.mark.parametrize(
    "config",
    [
        OFF.replace(noise_prob=1.0),
        OFF.replace(amplitude_prob=1.0),
        OFF.replace(speed_prob=1.0),
        OFF.replace(shift_prob=1.0),
        AugmentConfig(),
        AugmentConfig(noise_prob=0.9, noise_max_scale=1.0, speed_max_scale=0.5, shift_max_samples=7000),
    ],
    ids=["noise", "amplitude", "speed", "shift", "official", "stronger"],
)
def test_matches_the_official_transforms_on_unpadded_clips(batch, config):
    out, expected, _ = _run(batch, config)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("config", [OFF, AugmentConfig(enabled=False)], ids=["p=0", "disabled"])
def test_no_augmentation_leaves_clips_untouched(batch, config):
    out, _, padded = _run(batch, config)
    np.testing.assert_array_equal(out, padded)


def test_each_transform_changes_clips_only_when_drawn(batch):
    clips, lengths, noises, draws = batch
    for name in ("noise", "amplitude", "speed", "shift"):
        config = OFF.replace(**{f"{name}_prob": 0.5})
        out, _, padded = _run(batch, config)
        changed = np.any(out != padded, axis=1)
        drawn = draws[:, COLUMN[f"{name}_apply"]] < 0.5
        assert not np.any(changed & ~drawn), name
        assert changed[drawn].mean() > 0.9, name


def test_noise_is_required_when_mixing():
    with pytest.raises(ValueError, match="no noise was given"):
        augment_batch(tf.zeros([1, S]), tf.constant([S]), tf.zeros([1, NUM_DRAWS]), AugmentConfig())


def test_noise_shorter_than_a_clip_is_named():
    with pytest.raises(ValueError, match="short.wav: background noise of 15999 samples"):
        NoiseBank.from_arrays({"long.wav": np.zeros(S), "short.wav": np.zeros(S - 1)}, S)


def test_config_round_trip_and_validation(tmp_path):
    config = AugmentConfig(amplitude_range=(0.5, 1.5), shift_max_samples=100)
    assert AugmentConfig.load(config.save(tmp_path / "augment.json")) == config
    for bad in (
        {"noise_prob": 1.5},
        {"amplitude_range": (1.2, 1.0)},
        {"speed_max_scale": 1.0},
        {"shift_max_samples": -1},
    ):
        with pytest.raises(ConfigError, match="AugmentConfig"):
            AugmentConfig(**bad)
