"""``bifsmn-tf demo``: the results table and checks, and (slow) the whole demo from scratch."""

from __future__ import annotations

import json

import pytest

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf import demo
from bifsmn_tf.cli import main
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.records import EvaluationRecord
from bifsmn_tf.training import run
from bifsmn_tf.training.presets import PRESETS


def _evaluation(
    accuracies: dict[str, float], rejection: float = 0.69, unseen: float | None = None, argmax_frr: float = 0.05
) -> EvaluationRecord:
    """An evaluation record with the figures the table reads; each width's detection figures
    are ``rejection`` and ``argmax_frr`` at argmax and, at the threshold, FRR = 1 - accuracy and
    FAR = (1 - rejection) / 10; with ``unseen``, that share of words no model heard accepted at
    the threshold."""
    detection = {
        w: {
            "argmax": {"non_keyword_rejection": rejection, "pooled": {"frr": argmax_frr}},
            "thresholds": {"pooled": 0.8},
            "at_pooled_threshold": {"pooled": {"frr": 1 - a, "far": (1 - rejection) / 10}},
        }
        for w, a in accuracies.items()
    }
    width_records = {
        w: {"accuracy": a, "per_class": {}, "confusion_matrix": [], "confusion_png": f"confusion_w{w}.png"}
        for w, a in accuracies.items()
    }
    return EvaluationRecord.from_dict(
        {
            "run_dir": "..",
            "kind": "student",
            "task": "v1-12",
            "protocol": "bifsmn",
            "split": "test",
            "labels": ["yes"],
            "data_root": "/data",
            "num_examples": 200,
            "widths": width_records,
            "detection": {
                "protocol": "bifsmn",
                "num_examples": 300,
                "far_target": 0.01,
                "thresholds_from": "validation",
                "det_png": "det.png",
                "widths": detection,
                "unseen_words": None
                if unseen is None
                else {
                    w: {
                        "clips": 40,
                        "words": 4,
                        "accepted_at_argmax": 0.5,
                        "accepted_at_threshold": unseen,
                        "accepted_as": {"yes": 4},
                    }
                    for w in accuracies
                },
            },
        },
        "/r/eval",
    )


@pytest.mark.parametrize(
    "teacher, student, rejection, within, monotone, target",
    [
        (0.95, {"8": 0.93, "4": 0.90, "2": 0.90}, 0.69, True, True, True),
        (0.95, {"8": 0.91, "4": 0.90, "2": 0.85}, 0.69, False, True, True),
        (0.95, {"8": 0.94, "4": 0.95, "2": 0.85}, 0.69, True, False, True),
        (0.95, {"8": 0.93, "4": 0.90, "2": 0.90}, 0.40, True, True, False),  # FAR 6 %
        (0.95, {"8": 0.89, "4": 0.88, "2": 0.80}, 0.69, False, True, False),  # FRR 11 %
    ],
)
def test_checks_apply_the_demo_bounds(teacher, student, rejection, within, monotone, target):
    # In _evaluation, FRR at the threshold is 1 - accuracy: both bounds move together.
    checks = demo.demo_checks(_evaluation({"8": teacher}), _evaluation(student, rejection))
    assert checks["within_max_drop"] is within and checks["monotone_in_width"] is monotone
    assert checks["frr_within_max_drop"] is within and checks["frr_monotone_in_width"] is monotone
    assert checks["meets_detection_target"] is target
    assert checks["meets_detection_target_at_argmax"] is False  # 69 % or 40 % rejected at argmax
    assert checks["drop_points_full_width"] == pytest.approx(100 * (teacher - student["8"]), abs=0.01)
    assert checks["frr_drop_points_full_width"] == pytest.approx(100 * (teacher - student["8"]), abs=0.01)


@pytest.mark.parametrize(
    "rejection, argmax_frr, met",
    [(0.96, 0.089, True), (0.95, 0.10, True), (0.949, 0.05, False), (0.99, 0.101, False)],
)
def test_the_target_at_argmax_reads_the_argmax_rates(rejection, argmax_frr, met):
    student = _evaluation({"8": 0.93, "4": 0.90, "2": 0.90}, rejection, argmax_frr=argmax_frr)
    checks = demo.demo_checks(_evaluation({"8": 0.95}), student)
    assert checks["meets_detection_target_at_argmax"] is met


def test_checks_without_thresholds_fail_the_detection_bounds():
    student = _evaluation({"8": 0.93, "4": 0.90, "2": 0.90})
    for width in student.detection.widths.values():
        width["thresholds"]["pooled"], width["at_pooled_threshold"] = None, None
    checks = demo.demo_checks(_evaluation({"8": 0.95}), student)
    assert checks["frr_drop_points_full_width"] is None
    assert not (checks["frr_within_max_drop"] or checks["frr_monotone_in_width"] or checks["meets_detection_target"])


def test_results_table_lists_teacher_and_every_width():
    teacher, student = _evaluation({"8": 0.95}), _evaluation({"8": 0.93, "4": 0.9, "2": 0.875})
    results = {
        "teacher": teacher,
        "student": student,
        "teacher_run": "/r/teacher",
        "student_run": "/r/student",
        "checks": demo.demo_checks(teacher, student),
        "memory_input": "float",
        "input_thresholds": {"fe3": [-0.67, 0.0, 0.67], "fc1": [0.0]},
        "features": FeatureConfig().to_dict(),
        "flatbuffers": "/r/student/flatbuffers",
        "conversion": {
            "storage": {"flatbuffer_ratio": 15.61, "parameter_count_ratio": 21.15},
            "models": [
                {
                    "file": "student_w8.tflite",
                    "kind": "student",
                    "width": 8,
                    "bytes": 152436,
                    "binary_convs": 18,
                    "float_ops": 60,
                    "top1_agreement": 1.0,
                },
            ],
        },
        "seconds": {"data": 10.0, "teacher": 20.0},
        "cores_busy": {"data": 1.84, "teacher": 1.5},
        "host": {"cpu": "AMD EPYC", "cores": 2},
    }
    table = demo.format_results(results)
    assert "| student_w8.tflite | 152,436 | 18 | 60 | 100.0 % |" in table
    assert (
        "Time (s) on AMD EPYC, 2 cores: data 10, teacher 20; cores busy (CPU seconds per second): "
        "data 1.8, teacher 1.5\n"
    ) in table
    assert "15.61x by file bytes, 21.15x by parameter count" in table
    assert "| D-FSMN teacher | 8 | 32/32 | 95.00 | +0.00 | 69.0 | 5.0 | 3.10 | n/a |" in table
    assert "| BiFSMN (HED) | 4 | 1/1 | 90.00 | -5.00 | 69.0 | 10.0 | 3.10 | n/a |" in table
    assert "| BiFSMN (HED) | 2 | 1/1 | 87.50 | -7.50 | 69.0 | 12.5 | 3.10 | n/a |" in table
    assert "every non-keyword clip of the test split kept (300 clips)" in table
    assert "false-accept rate of 1 %" in table
    assert "Full-width drop: 2.00 points of accuracy (within the 3-point bound), 2.00 points of FRR (within" in table
    assert "accuracy does not rise and FRR does not fall" in table
    assert (
        "FAR <= 5 %, FRR <= 10 %): met at the threshold chosen on validation (FAR 3.10 %, FRR 7.0 %); "
        "NOT met at argmax (FAR 31.00 %, FRR 5.0 %)."
    ) in table
    assert "memory convs fed the float residual stream" in table
    assert (
        "fe3's binarized at -0.67, 0, 0.67, fc1's at 0, the sign; at several thresholds each input channel "
        "becomes that many bits)"
    ) in table
    assert "Features: 32 log-mel bins, 128 ms window, 32 ms hop (32 frames)." in table
    # A set with words no model heard: their share accepted at each width's threshold.
    with_unseen = {
        **results,
        "teacher": _evaluation({"8": 0.95}, unseen=0.2),
        "student": _evaluation({"8": 0.93, "4": 0.9, "2": 0.875}, unseen=0.125),
    }
    table = demo.format_results(with_unseen)
    assert "| D-FSMN teacher | 8 | 32/32 | 95.00 | +0.00 | 69.0 | 5.0 | 3.10 | 20.0 |" in table
    assert "| BiFSMN (HED) | 2 | 1/1 | 87.50 | -7.50 | 69.0 | 12.5 | 3.10 | 12.5 |" in table
    finer = FeatureConfig(n_fft=512, win_length=480, hop_length=320, n_mels=40, per_bin_mean_removal=True)
    table = demo.format_results({**results, "features": finer.to_dict()})
    assert (
        "Features: 40 log-mel bins, 30 ms window, 20 ms hop (51 frames), each bin's mean over the clip removed."
        in table
    )


@pytest.mark.slow
def test_demo_from_scratch_meets_its_bounds(tmp_path, capsys):
    """The README's first command, end to end: synthetic data, teacher, BiFSMN, evaluation."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "demo"
    # The runs are the demo preset's, as `train-teacher --preset demo` and `train --preset demo` make them.
    teacher = run.teacher_configs(out / "data", PRESETS["demo"], data_dir=str(out.resolve()))
    assert run.RunConfigs.load(out / "teacher") == teacher
    assert run.RunConfigs.load(out / "student") == run.student_configs(out / "teacher", PRESETS["demo"])
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert (tmp_path / "demo" / "results.md").read_text() in printed
    assert set(results["student"]["widths"]) == {"8", "4", "2"}
    assert results["checks"]["within_max_drop"], results["checks"]
    assert results["checks"]["monotone_in_width"], results["checks"]
    assert (results["teacher_run"], results["student_run"], results["data"]) == ("teacher", "student", "data")
    assert results["flatbuffers"] == "student/flatbuffers"
    manifest = json.loads((tmp_path / "demo" / "student" / "flatbuffers" / "manifest.json").read_text())
    assert manifest["storage"] == results["conversion"]["storage"]
    assert {m["file"] for m in manifest["models"]} == {m["file"] for m in results["conversion"]["models"]}
