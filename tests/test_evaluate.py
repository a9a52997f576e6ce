"""Evaluation of runs: metrics from confusion matrices, per-width results, files, the CLI verb."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import BENCHMARKS_DIR, load_script

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf import detection, evaluate
from bifsmn_tf.cli import main
from bifsmn_tf.data.labels import LABELS_12
from bifsmn_tf.data.pipeline import make_dataset, unseen_word_waveforms
from bifsmn_tf.data.speech_commands import UNSEEN_WORDS_DIR, speaker_of, split_files
from bifsmn_tf.features import build_frontend
from bifsmn_tf.models.dfsmn import width_model
from bifsmn_tf.records import EvaluationRecord
from bifsmn_tf.training import run
from bifsmn_tf.training.presets import PRESETS

SMALL_MODEL = {"frontend_channels": 4, "hidden_size": 32, "memory_size": 16}


@pytest.fixture(scope="module")
def runs(synth_dataset, tmp_path_factory):
    """A one-epoch teacher and a one-epoch student (widths 8, 4) of it, narrow layers."""
    root = tmp_path_factory.mktemp("eval-runs")
    short = {"epochs": 1, "batch_size": 8, "learning_rate": 0.005}
    # The bifsmn protocol: every non-keyword clip in the split, whose counts the tests check.
    preset = PRESETS["demo"].with_options(
        teacher=short, student={**short, "widths": (8, 4)}, data={"protocol": "bifsmn"}
    )
    configs = run.teacher_configs(synth_dataset, preset, data_dir=str(root / "cache"))
    configs = dataclasses.replace(configs, model=configs.model.replace(**SMALL_MODEL))
    run.train(root / "teacher", configs, progress=False)
    student = run.student_configs(root / "teacher", preset)
    run.train(root / "student", student, teacher_run=root / "teacher", progress=False)
    return {"teacher": root / "teacher", "student": root / "student"}


def test_confusion_matrix_and_metrics_match_hand_counts():
    truth = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 1])
    confusion = evaluate.confusion_matrix(truth, predicted, 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [1, 2, 0], [0, 1, 0]])
    metrics = evaluate.width_metrics(confusion, ("a", "b", "c"))
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["per_class"]["b"] == {
        "recall": pytest.approx(2 / 3),
        "precision": pytest.approx(2 / 4),
        "support": 3,
    }
    assert metrics["per_class"]["c"]["recall"] == 0.0 and metrics["per_class"]["c"]["precision"] is None
    np.testing.assert_array_equal(metrics["confusion_matrix"], confusion)


# The student's case evaluates two widths of another model through the same code: slow (80 s).
@pytest.mark.parametrize(
    "kind, widths", [("teacher", ["8"]), pytest.param("student", ["8", "4"], marks=pytest.mark.slow)]
)
def test_evaluation_has_one_row_per_trained_width_and_agrees_with_the_model(runs, synth_dataset, kind, widths):
    result = evaluate.evaluate_run(runs[kind], synth_dataset, split="test", progress=False)
    assert list(result.widths) == widths
    assert (result.task, result.protocol, result.split, result.kind) == ("v1-12", "bifsmn", "test", kind)
    files = split_files(synth_dataset, "test")
    assert result.num_examples == len(files) + int(0.1 * len(files))  # bifsmn: + 10 % silence
    assert result.labels == LABELS_12 and result.run_dir == runs[kind].resolve()

    configs = run.RunConfigs.load(runs[kind])
    model, _ = run.load_run_model(runs[kind])
    features, labels = zip(*make_dataset(configs.data.replace(batch_size=64), configs.features, "test"))
    features, labels = np.concatenate(features), np.concatenate(labels)
    for width in widths:
        entry = result.widths[width]
        logits = width_model(model, int(width))(features, training=False).numpy()
        assert entry.accuracy == pytest.approx(np.mean(np.argmax(logits, -1) == labels))
        confusion = np.array(entry.confusion_matrix)
        assert confusion.sum() == result.num_examples
        assert entry.per_class["silence"]["support"] == int(0.1 * len(files))
        assert entry.confusion_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out_dir = runs[kind] / evaluate.EVAL_DIR / "test-bifsmn"
    assert EvaluationRecord.load(out_dir / "evaluation.json") == result
    report = (out_dir / "report.md").read_text()
    assert "| width | accuracy (%) |" in report and "non-keywords rejected at argmax" in report

    # Detection: thresholds come from the validation split's softmax, rates from the test split's.
    found = result.detection
    assert (found.protocol, found.thresholds_from, found.far_target) == ("bifsmn", "validation", 0.01)
    assert found.num_examples == result.num_examples and list(found.widths) == widths
    assert found.det_png == (out_dir / "det.png").resolve() and found.det_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    val_features, val_labels = zip(*make_dataset(configs.data.replace(batch_size=64), configs.features, "validation"))
    unknown, silence = LABELS_12.index("unknown"), LABELS_12.index("silence")
    for width in widths:
        summary = found.widths[width]
        logits = width_model(model, int(width))(features, training=False).numpy()
        non_keywords = np.argmax(logits[labels == unknown], -1)
        assert summary["argmax"]["non_keyword_rejection"] == pytest.approx(
            np.isin(non_keywords, [unknown, silence]).mean()
        )
        val_scores = tf.nn.softmax(width_model(model, int(width))(np.concatenate(val_features), training=False)).numpy()
        chosen = detection.choose_thresholds(val_scores, np.concatenate(val_labels), LABELS_12, 0.01)
        assert summary["thresholds"]["pooled"] == pytest.approx(chosen["pooled"])
        # At that threshold, the validation split's own false-accept rate meets the target.
        val_rates = detection.rates(
            detection.threshold_decisions(val_scores, LABELS_12, chosen["pooled"]),
            np.concatenate(val_labels),
            LABELS_12,
        )
        assert val_rates["pooled"]["far"] <= 0.01
        assert summary["at_pooled_threshold"]["pooled"]["frr"] == pytest.approx(evaluate.headline(result, width)["frr"])


def test_standard_protocol_changes_the_composition(runs, synth_dataset):
    result = evaluate.evaluate_run(runs["teacher"], synth_dataset, split="test", protocol="standard", progress=False)
    assert result.protocol == "standard"
    support = {label: v["support"] for label, v in result.widths["8"].per_class.items()}
    keywords = sum(support[w] for w in LABELS_12[2:])
    assert support["silence"] == math.ceil(0.1 * keywords)  # noise crops instead of 10 % zeros
    assert 0 < support["unknown"] <= math.ceil(0.1 * keywords)
    # The detection figures keep every non-keyword clip whatever the protocol of the accuracy.
    assert result.detection.protocol == "bifsmn"
    files = split_files(synth_dataset, "test")
    assert result.detection.num_examples == len(files) + int(0.1 * len(files))


def test_the_threshold_spread_benchmark_scores_a_run_as_the_evaluation_does(runs, synth_dataset, tmp_path):
    """``benchmarks/threshold_spread.py`` reads a run's posteriors through the evaluation's code and
    adds each clip's speaker: its threshold and rates from validation to test are the evaluation's."""
    script = load_script(BENCHMARKS_DIR / "threshold_spread.py")
    names, splits = script.split_scores(runs["teacher"])
    files = split_files(synth_dataset, "test")
    # Every clip of a word, none of silence (no file, no speaker), each with its file's speaker.
    assert len(splits["test"]["labels"]) == len(files) and LABELS_12.index("silence") not in splits["test"]["labels"]
    assert sorted(splits["test"]["speakers"]) == sorted(speaker_of(f) for f in files)
    result = evaluate.evaluate_run(runs["teacher"], synth_dataset, progress=False, out_dir=tmp_path, far_target=0.05)
    landed = script.spread(names, splits, 0.05, [0.05], [], draws=1, seed=0)["8"]["validation_to_test"]
    summary = result.detection.widths["8"]
    assert landed["threshold"] == pytest.approx(summary["thresholds"]["pooled"])
    pooled = summary["at_pooled_threshold"]["pooled"]
    assert (landed["far"], landed["frr"]) == pytest.approx((pooled["far"], pooled["frr"]))


def test_words_no_model_heard_are_scored_on_the_test_split_alone(runs, synth_dataset, tmp_path):
    """Test clips of other words, copied under the unseen-words folder as a synthetic set made
    with unseen_words_per_speaker keeps them: scored per width at argmax and at the threshold."""
    root = shutil.copytree(synth_dataset, tmp_path / "set")
    sources = [f for f in split_files(synth_dataset, "test") if f.split("/")[0] in ("bed", "cat", "wow")]
    for index, source in enumerate(sources):
        # Named after the source's folder too: the test split may hold one speaker only.
        target = root / UNSEEN_WORDS_DIR / ("apple", "river")[index % 2] / source.replace("/", "_")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synth_dataset / source, target)
    result = evaluate.evaluate_run(runs["teacher"], root, split="test", progress=False, out_dir=tmp_path / "eval")
    found = result.detection.unseen_words["8"]
    assert (found["clips"], found["words"]) == (len(sources), 2)
    # The split's own figures do not change: the folder is in no split.
    plain = evaluate.evaluate_run(runs["teacher"], synth_dataset, progress=False, out_dir=tmp_path / "plain")
    assert (result.num_examples, result.detection.widths) == (plain.num_examples, plain.detection.widths)
    assert plain.detection.unseen_words is None

    configs = run.RunConfigs.load(runs["teacher"])
    model, _ = run.load_run_model(runs["teacher"])
    waveforms, words = unseen_word_waveforms(configs.data.replace(root=str(root)), configs.features)
    assert sorted(words) == sorted(("apple", "river")[i % 2] for i in range(len(sources)))
    scores = tf.nn.softmax(model(build_frontend(configs.features)(waveforms), training=False)).numpy()
    keywords = detection.keyword_classes(LABELS_12)
    assert found["accepted_at_argmax"] == pytest.approx(np.isin(scores.argmax(-1), keywords).mean())
    threshold = result.detection.widths["8"]["thresholds"]["pooled"]
    accepted = scores[:, keywords].max(-1) >= threshold
    assert found["accepted_at_threshold"] == pytest.approx(accepted.mean())
    assert sum(found["accepted_as"].values()) == accepted.sum()
    assert evaluate.headline(result, "8")["unseen_far"] == found["accepted_at_threshold"]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert f"Words no model heard ({len(sources)} clips of 2 words" in report
    assert EvaluationRecord.load(tmp_path / "eval" / "evaluation.json") == result
    # Only the test speakers say them: another split has no such figure.
    validation = evaluate.evaluate_run(
        runs["teacher"], root, split="validation", progress=False, out_dir=tmp_path / "v"
    )
    assert validation.detection.unseen_words is None and evaluate.headline(validation, "8")["unseen_far"] is None


def test_cli_evaluate_prints_the_table_and_writes_json(runs, synth_dataset, tmp_path, capsys):
    path = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            str(runs["student"]),
            "--data",
            str(synth_dataset),
            "--split",
            "validation",
            "--json",
            str(path),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    result = EvaluationRecord.load(path)
    assert set(result.widths) == {"8", "4"} and result.split == "validation"
    assert result.run_dir == runs["student"].resolve()  # stored relative to the JSON file
    for width, entry in result.widths.items():
        assert f"| {width} | {100 * entry.accuracy:.2f} |" in printed
    assert "| yes |" in printed


def test_evaluating_a_directory_that_is_not_a_run_fails_clearly(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--no-progress"]) == 2
    assert "not a training run directory" in capsys.readouterr().err
