"""What a person watching a training run sees: a progress bar per epoch, ``RUN_DIR/metrics.csv``
(one row per epoch) and ``RUN_DIR/training_curves.png``.

:mod:`bifsmn_tf.training.run` lays out the run directory and commits each epoch; it hands each
epoch's metrics to a :class:`MetricsLog` before the checkpoint is committed.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import tensorflow as tf
from tqdm import tqdm

from bifsmn_tf.fileio import atomic_path, atomic_write_text

METRICS = "metrics.csv"
CURVES = "training_curves.png"
#: Drawing the curves costs about as much as validating a short epoch; a person watching them
#: needs no more than this cadence.
CURVES_SECONDS = 30.0


class MetricsLog:
    """``metrics.csv`` and ``training_curves.png`` of a run directory, both written atomically.

    ``metrics.csv`` gets one row per epoch: learning rate, training time, samples/s, train and
    validation metrics. The curves are redrawn at most every :data:`CURVES_SECONDS`, and after
    the last epoch.

    Args:
        run_dir: the run directory the two files are in.
        widths: the trained widths, widest first; the curves have a colour per width.
        first_epoch: the first epoch to be trained now (0-based).
    """

    def __init__(self, run_dir: Path, widths: tuple[int, ...], first_epoch: int) -> None:
        self.run_dir = run_dir
        self.widths = widths
        # Rows of epochs that were not committed (a crash after writing them) are redone.
        self.rows = [r for r in _read_metrics(run_dir / METRICS) if int(r["epoch"]) < first_epoch]
        self._curves_drawn = -math.inf

    def add(self, epoch: int, logs: dict[str, float], train_seconds: float, *, last: bool) -> None:
        """Write the row of ``epoch`` and, when due, the curves.

        Args:
            epoch: the epoch (0-based).
            logs: the epoch's Keras logs; their ``examples`` count (training clips) becomes the
                samples/s, ``lr`` the learning rate.
            train_seconds: the epoch's training time, validation not included.
            last: the run's last epoch: the curves are drawn whatever the cadence.
        """
        logs = dict(logs)
        examples = logs.pop("examples", 0.0)
        logs.pop("val_examples", None)
        row = {
            "epoch": epoch,
            "learning_rate": logs.pop("lr", float("nan")),
            "train_seconds": round(train_seconds, 3),
            "samples_per_second": round(examples / max(train_seconds, 1e-9), 1),
            **{k: round(v, 6) for k, v in sorted(logs.items())},
        }
        self.rows.append(row)
        _write_metrics(self.run_dir / METRICS, self.rows)
        if last or time.monotonic() - self._curves_drawn >= CURVES_SECONDS:
            plot_training_curves(self.rows, self.widths, self.run_dir / CURVES)
            self._curves_drawn = time.monotonic()


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_training_curves(rows: list[dict[str, Any]], widths: tuple[int, ...], path: Path) -> None:
    """Accuracy and cross-entropy per width against epoch, train (dashed) and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (acc_axis, ce_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for index, width in enumerate(widths):
        color = f"C{index}"
        for prefix, style in (("", "--"), ("val_", "-")):
            split = "train" if not prefix else "val"
            acc = [float(r[f"{prefix}acc_{width}"]) for r in rows]
            ce = [float(r[f"{prefix}ce_{width}"]) for r in rows]
            acc_axis.plot(epochs, acc, style, color=color, label=f"width {width} {split}")
            ce_axis.plot(epochs, ce, style, color=color, label=f"width {width} {split}")
    acc_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy per width")
    ce_axis.set(xlabel="epoch", ylabel="cross-entropy", title="cross-entropy per width", yscale="log")
    acc_axis.legend(fontsize="small")
    acc_axis.grid(alpha=0.3)
    ce_axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


class ProgressBars(tf.keras.callbacks.Callback):
    """A tqdm bar per epoch of training and per validation pass.

    Args:
        epochs: the run's number of epochs.
        train_steps: batches of a training epoch.
        val_steps: batches of a validation pass.
    """

    def __init__(self, epochs: int, train_steps: int, val_steps: int) -> None:
        super().__init__()
        self.epochs, self.train_steps, self.val_steps = epochs, train_steps, val_steps
        self.bar: tqdm | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch
        self.bar = tqdm(total=self.train_steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.bar.update(1)
        self.bar.set_postfix(_short(logs), refresh=False)

    def on_test_begin(self, logs=None) -> None:
        self.bar.close()
        self.bar = tqdm(
            total=self.val_steps, desc=f"validate {self.epoch + 1}/{self.epochs}", unit="batch", leave=False
        )

    def on_test_batch_end(self, batch: int, logs=None) -> None:
        self.bar.update(1)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.bar.close()
        summary = " ".join(f"{k}={v:.4f}" for k, v in _short(logs).items())
        tqdm.write(f"epoch {epoch + 1}/{self.epochs}: {summary}")


def _short(logs: dict[str, Any] | None) -> dict[str, float]:
    """The accuracies and the total loss: what fits on one progress line."""
    return {k: float(v) for k, v in (logs or {}).items() if k == "loss" or "acc_" in k}
