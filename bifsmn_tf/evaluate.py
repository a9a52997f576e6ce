"""Evaluation of a training run: accuracy per width, per-class table, confusion matrices, and
the detection figures a keyword spotter is judged by (false rejects at a false-accept rate).

Works on the best model of any run directory (``RUN_DIR/model``) and any dataset in the Speech
Commands layout. Everything is written under ``RUN_DIR/eval/<split>-<protocol>/`` (or ``out_dir``):
``evaluation.json`` (:class:`~bifsmn_tf.records.EvaluationRecord`, which :func:`evaluate_run`
returns), ``confusion_w<width>.png``, ``det.png`` (the DET curve of every width) and
``report.md``.

**Detection.** Accuracy on a split with a tenth of non-keywords hides how often other words are
taken for keywords. ``detection`` scores every width on every non-keyword clip of the split (the
``bifsmn`` protocol's composition, whatever the accuracy's protocol), chooses for each width the
lowest posterior threshold whose false-accept rate on the *validation* split's non-keyword speech
is at most ``far_target``, and reports the false-reject and false-accept rates that threshold gives
on the evaluated split, per keyword and pooled, plus the non-keyword rejection of the plain argmax
decision (:mod:`bifsmn_tf.detection` defines every field). On the test split of a synthetic set
made with ``unseen_words_per_speaker``, ``detection.unseen_words`` adds, per width, how often clips of
words no model was trained on are taken for keywords, at argmax and at that threshold: the 20
non-keywords of Speech Commands are heard in training, so their rate flatters a model that meets
every word of a language. :func:`headline` picks the few figures that summaries show beside
accuracy.

Accuracy is the exact count of correct clips over all clips (the official v1 code averaged
per-batch accuracies, which biases towards the last, smaller batch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from bifsmn_tf import detection
from bifsmn_tf.data.labels import task_labels
from bifsmn_tf.data.pipeline import DataConfig, make_dataset, unseen_word_waveforms
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.fileio import atomic_path, atomic_write_text, check_output
from bifsmn_tf.models.dfsmn import width_model
from bifsmn_tf.records import EVALUATION, DetectionEvaluation, EvaluationRecord, WidthEvaluation
from bifsmn_tf.training.run import RunConfigs, load_run_model, read_run_info

EVAL_DIR = "eval"
#: Detection figures use every non-keyword clip of a split, whatever the accuracy's protocol.
DETECTION_PROTOCOL = "bifsmn"
#: The split whose scores choose the operating thresholds: never the one they are applied to.
THRESHOLD_SPLIT = "validation"
DEFAULT_FAR_TARGET = 0.01


def evaluate_run(
    run_dir: str | Path,
    data_root: str | Path | None = None,
    *,
    split: str = "test",
    protocol: str | None = None,
    batch_size: int = 256,
    progress: bool = True,
    out_dir: str | Path | None = None,
    far_target: float = DEFAULT_FAR_TARGET,
) -> EvaluationRecord:
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
        far_target: the false-accept rate on non-keyword speech the detection thresholds are
            chosen for, on the validation split (see the module docstring).

    Returns:
        The evaluation, also saved as ``evaluation.json``.
    """
    if not 0.0 <= far_target <= 1.0:
        raise ValueError(f"far_target must be in [0, 1], got {far_target}")
    run_dir = Path(run_dir)
    run_record = read_run_info(run_dir)
    configs = RunConfigs.load(run_dir)
    data_config = configs.data.replace(batch_size=batch_size)
    if data_root is not None:
        data_config = data_config.replace(root=str(Path(data_root).expanduser().resolve()))
    if protocol is not None:
        data_config = data_config.replace(protocol=protocol)
    labels = task_labels(data_config.task)
    widths = configs.train.widths
    out_dir = check_output(
        out_dir or run_dir / EVAL_DIR / f"{split}-{data_config.protocol}",
        directory=True,
        what="evaluation folder (--out)",
    )

    model, _ = load_run_model(run_dir)
    predict = softmax_forward([width_model(model, width) for width in widths])

    def posteriors(config: DataConfig, on: str) -> tuple[np.ndarray, list[np.ndarray]]:
        return split_posteriors(predict, config, configs.features, on, progress=progress)

    truth_all, scores = posteriors(data_config, split)
    num_examples = int(len(truth_all))
    accuracies = {}
    for width, width_scores in zip(widths, scores, strict=True):
        confusion = confusion_matrix(truth_all, width_scores.argmax(axis=-1), len(labels))
        metrics = width_metrics(confusion, labels)
        title = f"{run_record.kind} width {width}: accuracy {100 * metrics['accuracy']:.2f}%"
        png = plot_confusion(confusion, labels, out_dir / f"confusion_w{width}.png", title=title)
        accuracies[str(width)] = WidthEvaluation(**metrics, confusion_png=png.resolve())

    # False accepts are measured on every non-keyword clip of the split (the bifsmn protocol's
    # composition): the standard protocol keeps a tenth of them, too few to see a rate of 1 %.
    detection_config = data_config.replace(protocol=DETECTION_PROTOCOL)
    if detection_config != data_config:
        truth_all, scores = posteriors(detection_config, split)
    if split == THRESHOLD_SPLIT:
        val_truth, val_scores = truth_all, scores
    else:
        val_truth, val_scores = posteriors(detection_config, THRESHOLD_SPLIT)
    summaries = {}
    for width, test_scores, width_val_scores in zip(widths, scores, val_scores, strict=True):
        thresholds = detection.choose_thresholds(width_val_scores, val_truth, labels, far_target)
        summaries[str(width)] = detection.detection_summary(test_scores, truth_all, labels, thresholds)
    unseen = None
    waveforms, words = unseen_word_waveforms(data_config, configs.features) if split == "test" else ((), ())
    if len(words):
        frontend = build_frontend(configs.features)
        unseen_scores = [[] for _ in widths]
        for start in range(0, len(words), batch_size):
            for index, batch_scores in enumerate(predict(frontend(waveforms[start : start + batch_size]))):
                unseen_scores[index].append(batch_scores.numpy())
        unseen = {
            str(width): detection.unseen_word_accepts(
                np.concatenate(width_scores), labels, summaries[str(width)]["thresholds"]["pooled"], words
            )
            for width, width_scores in zip(widths, unseen_scores, strict=True)
        }
    det_png = detection.plot_det(
        {f"width {w}": summary for w, summary in summaries.items()},
        out_dir / "det.png",
        title=f"{run_record.kind} on {split}: keywords against non-keyword speech",
    )
    result = EvaluationRecord(
        run_dir=run_dir.resolve(),
        kind=run_record.kind,
        task=data_config.task,
        protocol=data_config.protocol,
        split=split,
        labels=tuple(labels),
        data_root=data_config.root,
        num_examples=num_examples,
        widths=accuracies,
        detection=DetectionEvaluation(
            protocol=DETECTION_PROTOCOL,
            num_examples=int(len(truth_all)),
            far_target=far_target,
            thresholds_from=THRESHOLD_SPLIT,
            det_png=det_png.resolve(),
            widths=summaries,
            unseen_words=unseen,
        ),
    )
    result.save(out_dir / EVALUATION)
    atomic_write_text(out_dir / "report.md", format_report(result))
    return result


def softmax_forward(models: list[tf.keras.Model]) -> Callable[[tf.Tensor], list[tf.Tensor]]:
    """One traced function: features ``(B, T, F)`` -> ``[posteriors (B, classes) per model]``."""

    # No AutoGraph: the body is plain Python over the widths, and converting every layer's call
    # made tracing several times slower (see models.dfsmn._frontend).
    @tf.function(reduce_retracing=True, autograph=False)
    def predict(features: tf.Tensor) -> list[tf.Tensor]:
        return [tf.nn.softmax(m(features, training=False), axis=-1) for m in models]

    return predict


def split_posteriors(
    predict: Callable[[tf.Tensor], list[tf.Tensor]],
    data_config: DataConfig,
    feature_config: FeatureConfig,
    split: str,
    *,
    progress: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(labels (N,), [posteriors (N, classes) per model of predict])`` of every example of
    ``split``, unaugmented, in :func:`~bifsmn_tf.data.speech_commands.examples`' order (that of
    ``make_dataset`` without training), under ``data_config``'s protocol."""
    dataset = make_dataset(data_config, feature_config, split)
    truth, scores = [], []
    for features, batch_labels in tqdm(
        dataset,
        total=len(dataset),
        desc=f"evaluate {split} ({data_config.protocol})",
        unit="batch",
        disable=not progress,
    ):
        truth.append(batch_labels.numpy())
        scores.append([batch_scores.numpy() for batch_scores in predict(features)])
    return np.concatenate(truth), [np.concatenate(per_model) for per_model in zip(*scores, strict=True)]


def headline(result: EvaluationRecord, width: str) -> dict[str, float | None]:
    """The figures a keyword spotter is judged by, for one width of an evaluation: accuracy,
    non-keyword rejection at argmax, the pooled false-reject and false-accept rates at the
    threshold chosen on validation for the target false-accept rate, and the share of words no
    model heard accepted at that threshold (``None`` without them)."""
    summary = result.detection.widths[width]
    at = summary["at_pooled_threshold"]
    unseen = result.detection.unseen_words
    return {
        "accuracy": result.widths[width].accuracy,
        "non_keyword_rejection": summary["argmax"]["non_keyword_rejection"],
        "argmax_frr": summary["argmax"]["pooled"]["frr"],
        "threshold": summary["thresholds"]["pooled"] if summary["thresholds"] else None,
        "frr": at["pooled"]["frr"] if at else None,
        "far": at["pooled"]["far"] if at else None,
        "unseen_far": unseen[width]["accepted_at_threshold"] if unseen else None,
    }


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``(classes, classes)`` counts: row = true label, column = predicted label."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def width_metrics(confusion: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Accuracy, per-class recall/precision/support and the matrix itself: the fields of a
    :class:`~bifsmn_tf.records.WidthEvaluation` but its plot."""
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
        "confusion_matrix": tuple(map(tuple, confusion.tolist())),
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


def format_report(result: EvaluationRecord) -> str:
    """Markdown: accuracy per width, then recall per class and width with support."""
    widths = list(result.widths)
    lines = [
        f"Evaluation of {result.run_dir} ({result.kind}) on {result.split} "
        f"({result.task}, protocol {result.protocol}, {result.num_examples} clips)",
        "",
        "| width | accuracy (%) |",
        "|---:|---:|",
        *(f"| {w} | {100 * result.widths[w].accuracy:.2f} |" for w in widths),
        "",
        "| class | support | " + " | ".join(f"recall w{w} (%)" for w in widths) + " |",
        "|---|---:|" + "---:|" * len(widths),
    ]
    for label in result.labels:
        support = result.widths[widths[0]].per_class[label]["support"]
        recalls = [result.widths[w].per_class[label]["recall"] for w in widths]
        cells = " | ".join("-" if r is None else f"{100 * r:.1f}" for r in recalls)
        lines.append(f"| {label} | {support} | {cells} |")
    return "\n".join(lines + ["", *format_detection(result)]) + "\n"


def percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def format_detection(result: EvaluationRecord) -> list[str]:
    """Markdown lines: per width, non-keyword rejection at argmax and FRR/FAR at the threshold
    chosen on validation."""
    found = result.detection
    target = percent(found.far_target, 2)
    lines = [
        f"Keywords against non-keyword speech ({found.num_examples} clips of {result.split}, every "
        f"non-keyword kept): threshold chosen on {found.thresholds_from} for a false-accept rate of "
        f"{target} %; DET curves in `{found.det_png.name}`.",
        "",
        "| width | non-keywords rejected at argmax (%) | FRR at argmax (%) | threshold | FRR (%) | FAR (%) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for width in found.widths:
        h = headline(result, width)
        threshold = "n/a" if h["threshold"] is None else f"{h['threshold']:.3f}"
        lines.append(
            f"| {width} | {percent(h['non_keyword_rejection'])} | {percent(h['argmax_frr'])} | {threshold} | "
            f"{percent(h['frr'])} | {percent(h['far'], 2)} |"
        )
    if found.unseen_words:
        first = next(iter(found.unseen_words.values()))
        lines += [
            "",
            f"Words no model heard ({first['clips']} clips of {first['words']} words, said by test speakers), "
            "taken for keywords:",
            "",
            "| width | at argmax (%) | at the threshold (%) | most often as |",
            "|---:|---:|---:|---|",
        ]
        for width, unseen in found.unseen_words.items():
            top = sorted(unseen["accepted_as"].items(), key=lambda kv: -kv[1])[:3]
            most = ", ".join(f"{k} {n}" for k, n in top if n) or "-"
            lines.append(
                f"| {width} | {percent(unseen['accepted_at_argmax'])} | "
                f"{percent(unseen['accepted_at_threshold'])} | {most} |"
            )
    return lines
