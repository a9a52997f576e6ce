"""Evaluation of a training run: accuracy per width, per-class table, confusion matrices.

Works on the best model of any run directory (``RUN_DIR/model``) and any dataset in the Speech
Commands layout. Everything is written under ``RUN_DIR/eval/<split>-<protocol>/`` (or ``out_dir``):
``evaluation.json`` (the structure below), ``confusion_w<width>.png``, and ``report.md``.

The JSON::

    {"widths": {"8": {"accuracy": 0.95, "per_class": {"yes": {"recall": ..., "precision": ...,
     "support": ...}, ...}, "confusion_matrix": [[...]]}, ...},
     "num_examples": N, "task": "v1-12", "protocol": "bifsmn", "split": "test",
     "labels": [...], "run_dir": "...", "kind": "student", "data_root": "..."}

Accuracy is the exact count of correct clips over all clips (the official v1 code averaged
per-batch accuracies, which biases towards the last, smaller batch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from bifsmn_tf.data.labels import task_labels
from bifsmn_tf.data.pipeline import make_dataset
from bifsmn_tf.fileio import atomic_path, atomic_write_text, check_output
from bifsmn_tf.models.dfsmn import width_model
from bifsmn_tf.training.run import RunConfigs, load_run_model, read_run_info

EVAL_DIR = "eval"


def evaluate_run(
    run_dir: str | Path,
    data_root: str | Path | None = None,
    *,
    split: str = "test",
    protocol: str | None = None,
    batch_size: int = 256,
    progress: bool = True,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate every trained width of the run's best model on ``split``.

    Args:
        run_dir: a run directory of :func:`bifsmn_tf.training.run.train`.
        data_root: a dataset root in the Speech Commands layout; default: the run's own data.
        split: ``test``, ``validation``, ``train`` or ``official_test``.
        protocol: ``bifsmn`` or ``standard`` (silence/unknown composition); default: the run's.
        batch_size: clips per inference batch (does not change the result).
        progress: show a tqdm bar over batches.
        out_dir: where the files go; default ``RUN_DIR/eval/<split>-<protocol>/`` (a run of
            another user's may not be writable: then give another).
    Returns:
        The evaluation dict (see the module docstring), also saved as ``evaluation.json``.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    configs = RunConfigs.load(run_dir)
    data_config = configs.data.replace(batch_size=batch_size)
    if data_root is not None:
        data_config = data_config.replace(root=str(Path(data_root).expanduser().resolve()))
    if protocol is not None:
        data_config = data_config.replace(protocol=protocol)
    labels = task_labels(data_config.task)
    widths = configs.train.widths
    out_dir = check_output(
        out_dir or run_dir / EVAL_DIR / f"{split}-{data_config.protocol}", directory=True,
        what="evaluation folder (--out)",
    )

    model, _ = load_run_model(run_dir)
    models = [width_model(model, width) for width in widths]

    @tf.function(reduce_retracing=True)
    def predict(features: tf.Tensor) -> list[tf.Tensor]:
        return [tf.argmax(m(features, training=False), axis=-1, output_type=tf.int32) for m in models]

    dataset = make_dataset(data_config, configs.features, split)
    truth, predictions = [], [[] for _ in widths]
    for features, batch_labels in tqdm(
        dataset, total=len(dataset), desc=f"evaluate {split}", unit="batch", disable=not progress
    ):
        truth.append(batch_labels.numpy())
        for index, predicted in enumerate(predict(features)):
            predictions[index].append(predicted.numpy())
    truth_all = np.concatenate(truth)

    result: dict[str, Any] = {
        "widths": {},
        "num_examples": int(len(truth_all)),
        "task": data_config.task,
        "protocol": data_config.protocol,
        "split": split,
        "labels": list(labels),
        "run_dir": str(run_dir.resolve()),
        "kind": info["kind"],
        "data_root": data_config.root,
    }
    for width, predicted in zip(widths, predictions, strict=True):
        confusion = confusion_matrix(truth_all, np.concatenate(predicted), len(labels))
        entry = width_metrics(confusion, labels)
        entry["confusion_png"] = str(
            plot_confusion(confusion, labels, out_dir / f"confusion_w{width}.png", title=_title(info, width, entry))
        )
        result["widths"][str(width)] = entry
    atomic_write_text(out_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", format_report(result))
    return result


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``(classes, classes)`` counts: row = true label, column = predicted label."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def width_metrics(confusion: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Accuracy, per-class recall/precision/support and the matrix itself, JSON-ready."""
    correct = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    per_class = {
        label: {
            "recall": float(correct[i] / support[i]) if support[i] else None,
            "precision": float(correct[i] / predicted[i]) if predicted[i] else None,
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    total = int(confusion.sum())
    return {
        "accuracy": float(correct.sum() / total) if total else float("nan"),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion(confusion: np.ndarray, labels, path: Path, *, title: str) -> Path:
    """Row-normalised confusion matrix with counts, saved atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = 2.0 + 0.45 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize="small")
    axis.set_yticks(range(len(labels)), labels, fontsize="small")
    axis.set(xlabel="predicted", ylabel="true", title=title)
    if len(labels) <= 20:
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                color = "white" if normalised[i, j] > 0.5 else "black"
                axis.text(j, i, str(count), ha="center", va="center", fontsize="x-small", color=color)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the true class")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return path


def _title(info: dict[str, Any], width: int, entry: dict[str, Any]) -> str:
    return f"{info['kind']} width {width}: accuracy {100 * entry['accuracy']:.2f}%"


def format_report(result: dict[str, Any]) -> str:
    """Markdown: accuracy per width, then recall per class and width with support."""
    widths = list(result["widths"])
    lines = [
        f"Evaluation of {result['run_dir']} ({result['kind']}) on {result['split']} "
        f"({result['task']}, protocol {result['protocol']}, {result['num_examples']} clips)",
        "",
        "| width | accuracy (%) |",
        "|---:|---:|",
        *(f"| {w} | {100 * result['widths'][w]['accuracy']:.2f} |" for w in widths),
        "",
        "| class | support | " + " | ".join(f"recall w{w} (%)" for w in widths) + " |",
        "|---|---:|" + "---:|" * len(widths),
    ]
    for label in result["labels"]:
        support = result["widths"][widths[0]]["per_class"][label]["support"]
        recalls = [result["widths"][w]["per_class"][label]["recall"] for w in widths]
        cells = " | ".join("-" if r is None else f"{100 * r:.1f}" for r in recalls)
        lines.append(f"| {label} | {support} | {cells} |")
    return "\n".join(lines) + "\n"
