"""Training-time waveform augmentation of the official BiFSMN code as batched TF ops.

The steps: docs/design.md#augmentation.

In order, each with its own independent draws per clip:

1. background noise, p = 0.3: ``w <- (1 - s) w + s n`` with ``s ~ U(0, 0.3)`` and ``n`` a random
   crop of a random ``_background_noise_`` file, over the clip's own length. Crops start on a
   grid of ``NOISE_BLOCK`` samples (1 ms), so that cutting them is a gather of contiguous
   blocks, ~8x cheaper than one of single samples; a minute of noise still offers 60,000 starts;
2. amplitude, p = 0.5: ``w <- a w`` with ``a ~ U(0.7, 1.1)``;
3. speed and pitch, p = 0.5: ``c ~ U(-0.2, 0.2)``, nearest-neighbour resampling to
   ``floor(L / (1 + c))`` samples, output sample ``k`` taking input ``floor(k (1 + c))``
   (``torch.nn.functional.interpolate(scale_factor=1/(1+c))``, mode ``nearest``);
4. time shift, p = 0.5: by an integer ``d ~ U{-3200..3200}`` samples with zero fill, keeping the
   length;
5. fixed length: truncate or zero-pad to the clip length.

Clips arrive already zero-padded to the fixed length, with their true lengths alongside; the
ops keep track of the length, so the result equals doing the steps on the unpadded clip and
padding at the end. Steps 3-5 are one ``gather``.

The randomness is not drawn here: the caller passes ``draws``, ``NUM_DRAWS`` uniform [0, 1)
numbers per clip, so it can key them statelessly by (seed, epoch, clip) and a seed reproduces
the stream regardless of batching or parallelism.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from bifsmn_tf.config import ConfigError, JsonConfig

#: Uniform draws consumed per clip, one column each, in this order.
DRAW_COLUMNS = (
    "noise_apply",
    "noise_scale",
    "noise_file",
    "noise_offset",
    "amplitude_apply",
    "amplitude",
    "speed_apply",
    "speed",
    "shift_apply",
    "shift",
)
NUM_DRAWS = len(DRAW_COLUMNS)
_COLUMN = {name: i for i, name in enumerate(DRAW_COLUMNS)}

#: Noise crops start at multiples of this many samples.
NOISE_BLOCK = 16


@dataclasses.dataclass(frozen=True)
class AugmentConfig(JsonConfig):
    """Probabilities and ranges of the training augmentation; defaults are the official ones.

    Attributes:
        enabled: apply augmentation to training batches at all.
        noise_prob: probability of mixing in background noise.
        noise_max_scale: the noise weight ``s`` is drawn from U(0, noise_max_scale).
        amplitude_prob: probability of scaling the amplitude.
        amplitude_range: the gain is drawn from U(*amplitude_range).
        speed_prob: probability of the speed-and-pitch change.
        speed_max_scale: ``c`` is drawn from U(-speed_max_scale, speed_max_scale).
        shift_prob: probability of the time shift.
        shift_max_samples: the shift is drawn from U{-shift_max_samples..shift_max_samples}.
    """

    enabled: bool = True
    noise_prob: float = 0.3
    noise_max_scale: float = 0.3
    amplitude_prob: float = 0.5
    amplitude_range: tuple[float, float] = (0.7, 1.1)
    speed_prob: float = 0.5
    speed_max_scale: float = 0.2
    shift_prob: float = 0.5
    shift_max_samples: int = 3200

    def __post_init__(self) -> None:
        for name in ("noise_prob", "amplitude_prob", "speed_prob", "shift_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"AugmentConfig: {name} must be in [0, 1], got {value!r}")
        if not 0.0 <= self.noise_max_scale <= 1.0:
            raise ConfigError(f"AugmentConfig: noise_max_scale must be in [0, 1], got {self.noise_max_scale!r}")
        low, high = self.amplitude_range
        if not 0.0 <= low <= high:
            raise ConfigError(f"AugmentConfig: need 0 <= amplitude_range[0] <= [1], got {low, high}")
        if not 0.0 <= self.speed_max_scale < 1.0:
            raise ConfigError(f"AugmentConfig: speed_max_scale must be in [0, 1), got {self.speed_max_scale!r}")
        if self.shift_max_samples < 0:
            raise ConfigError(f"AugmentConfig: shift_max_samples must be >= 0, got {self.shift_max_samples!r}")

    @property
    def uses_noise(self) -> bool:
        return self.enabled and self.noise_prob > 0.0


class NoiseBank(NamedTuple):
    """Background-noise files cut into blocks of ``NOISE_BLOCK`` samples, ready for cropping.

    Attributes:
        blocks: ``(N, NOISE_BLOCK)`` float32, every file's blocks one after the other (a file's
            last ``< NOISE_BLOCK`` samples are dropped).
        bounds: ``(F, 2)`` int32 ``[first block, number of blocks]`` of each file.
    """

    blocks: tf.Tensor
    bounds: tf.Tensor

    @classmethod
    def from_arrays(cls, named: dict[str, np.ndarray], clip_samples: int) -> NoiseBank:
        """Build from ``{name: float32 samples}``; every file must hold a whole clip."""
        needed = NOISE_BLOCK * math.ceil(clip_samples / NOISE_BLOCK)
        if not named:
            raise ValueError("NoiseBank: no noise files")
        counts = []
        for name, samples in named.items():
            if len(samples) < needed:
                raise ValueError(
                    f"{name}: background noise of {len(samples)} samples is shorter than a clip ({needed} samples)"
                )
            counts.append(len(samples) // NOISE_BLOCK)
        blocks = np.concatenate(
            [s[: n * NOISE_BLOCK].reshape(n, NOISE_BLOCK) for s, n in zip(named.values(), counts, strict=True)]
        )
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return cls(
            tf.constant(blocks, tf.float32),
            tf.constant(np.stack([firsts, counts], axis=1), tf.int32),
        )


def augment_batch(
    waveforms: tf.Tensor,
    lengths: tf.Tensor,
    draws: tf.Tensor,
    config: AugmentConfig,
    noise: NoiseBank | None = None,
) -> tf.Tensor:
    """Augment a batch of fixed-length clips.

    Args:
        waveforms: ``(B, S)`` float32 clips, zero beyond their lengths; ``S`` known statically.
        lengths: ``(B,)`` int32 true lengths, ``<= S``.
        draws: ``(B, NUM_DRAWS)`` float32 uniforms in [0, 1), columns as ``DRAW_COLUMNS``.
        config: the augmentation settings.
        noise: the background noise; needed when ``config.uses_noise``.

    Returns:
        ``(B, S)`` float32 augmented clips.
    """
    if not config.enabled:
        return waveforms
    clip_samples = waveforms.shape[1]
    positions = tf.range(clip_samples)[tf.newaxis, :]  # (1, S)

    def column(name: str) -> tf.Tensor:
        return draws[:, _COLUMN[name]]

    def applied(name: str, prob: float) -> tf.Tensor:
        return column(f"{name}_apply") < prob

    if config.uses_noise:
        if noise is None:
            raise ValueError("augment_batch: noise mixing is enabled but no noise was given")
        files = tf.shape(noise.bounds)[0]
        file_index = tf.minimum(tf.cast(column("noise_file") * tf.cast(files, tf.float32), tf.int32), files - 1)
        first, count = tf.unstack(tf.gather(noise.bounds, file_index), axis=1)
        crop_blocks = math.ceil(clip_samples / NOISE_BLOCK)
        last_start = count - crop_blocks
        offset = tf.minimum(
            tf.cast(column("noise_offset") * tf.cast(last_start + 1, tf.float32), tf.int32),
            last_start,
        )
        block_index = (first + offset)[:, tf.newaxis] + tf.range(crop_blocks)[tf.newaxis, :]
        crops = tf.reshape(tf.gather(noise.blocks, block_index), [-1, crop_blocks * NOISE_BLOCK])
        scale = tf.where(applied("noise", config.noise_prob), column("noise_scale"), 0.0)
        scale = (scale * config.noise_max_scale)[:, tf.newaxis]
        # Noise lands beyond the clip's length too; the final gather zeroes everything there.
        waveforms = (1.0 - scale) * waveforms + scale * crops[:, :clip_samples]

    low, high = config.amplitude_range
    gain = tf.where(applied("amplitude", config.amplitude_prob), low + (high - low) * column("amplitude"), 1.0)
    waveforms = waveforms * gain[:, tf.newaxis]

    speed = tf.where(
        applied("speed", config.speed_prob),
        config.speed_max_scale * (2.0 * column("speed") - 1.0),
        0.0,
    )
    stretch = 1.0 + speed  # input samples per output sample
    new_lengths = tf.cast(tf.floor(tf.cast(lengths, tf.float32) / stretch), tf.int32)
    width = 2 * config.shift_max_samples + 1
    shift = tf.where(
        applied("shift", config.shift_prob),
        tf.minimum(tf.cast(column("shift") * width, tf.int32), width - 1) - config.shift_max_samples,
        0,
    )
    # Output sample k is shifted-signal sample k - shift, which is resampled-input sample
    # floor((k - shift) * stretch); it is zero outside [0, new_length) before or after the shift.
    shifted = positions - shift[:, tf.newaxis]
    source = tf.cast(tf.floor(tf.cast(shifted, tf.float32) * stretch[:, tf.newaxis]), tf.int32)
    valid = (shifted >= 0) & (shifted < new_lengths[:, tf.newaxis]) & (positions < new_lengths[:, tf.newaxis])
    source = tf.clip_by_value(source, 0, clip_samples - 1)
    return tf.where(valid, tf.gather(waveforms, source, batch_dims=1), 0.0)
