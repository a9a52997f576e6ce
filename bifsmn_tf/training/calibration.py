"""Batch-norm statistics recomputed after training, per width (``TrainConfig.calibrate_batch_norm``).

During training every BN keeps a moving average of its batch statistics with momentum 0.9: it
follows the last couple of dozen batches, and a block's shared BN also mixes the widths that run
it. With the learning rate at 0 the demo's student still swung by 3 points of validation
accuracy from one epoch to the next, through these averages alone. After the last epoch the
last model's statistics are replaced by the plain mean of the batch statistics over one more
epoch of the training stream, each width on its own path, as the switchable BN of slimmable
networks is calibrated (BENCHMARKS.md, "Batch norm per width"; the run side is
``bifsmn_tf.training.run``). A BN that several widths run gets the mean over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from bifsmn_tf.models.dfsmn import batch_norms_at, width_model


def recompute_batch_norm_statistics(
    model: tf.keras.Model,
    batches: Iterable[tuple[tf.Tensor, tf.Tensor]],
    widths: Sequence[int | None],
    *,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Set every BN moving mean and variance ``widths`` run to the mean of its batch statistics.

    Args:
        model: a teacher or student of :mod:`bifsmn_tf.models.dfsmn`; changed in place (its
            BN moving statistics only).
        batches: ``(features (B, T, F), labels)``, as the training stream gives them; each width
            passes over all of them in training mode, so a re-iterable dataset.
        widths: the widths to run (``None`` for the teacher).
        total: batches per pass, for the progress bar.
        progress: a tqdm bar per width.

    Returns:
        The number of batches each width ran.

    Raises:
        ValueError: ``batches`` is empty. On any error the statistics are left as they were.
    """
    norms = {width: batch_norms_at(model, width) for width in widths}
    layers = {id(bn): bn for width_norms in norms.values() for bn in width_norms}
    before = {key: (bn.moving_mean.numpy(), bn.moving_variance.numpy()) for key, bn in layers.items()}
    sums = {
        key: [np.zeros_like(mean, np.float64), np.zeros_like(mean, np.float64), 0] for key, (mean, _) in before.items()
    }
    momenta = {key: bn.momentum for key, bn in layers.items()}
    try:
        for width in widths:
            # At momentum 0 each moving statistic is the last batch's, read after every step.
            for bn in norms[width]:
                bn.momentum = 0.0
            forward = width_model(model, width)
            step = tf.function(lambda x, forward=forward: forward(x, training=True), autograph=False)
            count = 0
            for features, _ in tqdm(batches, total=total, desc=f"BN statistics, width {width}", disable=not progress):
                step(features)
                count += 1
                for bn in norms[width]:
                    running = sums[id(bn)]
                    running[0] += bn.moving_mean.numpy()
                    running[1] += bn.moving_variance.numpy()
                    running[2] += 1
            for bn in norms[width]:
                bn.momentum = momenta[id(bn)]
            if not count:
                raise ValueError("recompute_batch_norm_statistics: no batches")
    except BaseException:
        for key, bn in layers.items():
            bn.momentum = momenta[key]
            bn.moving_mean.assign(before[key][0])
            bn.moving_variance.assign(before[key][1])
        raise
    for key, (mean_sum, variance_sum, calls) in sums.items():
        layers[key].moving_mean.assign((mean_sum / calls).astype(np.float32))
        layers[key].moving_variance.assign((variance_sum / calls).astype(np.float32))
    return count
