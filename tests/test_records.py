"""bifsmn_tf.records: the typed records of the stages, written and read back, with paths relative
to the record; refused with the file and the field when damaged; read as bifsmn-tf wrote them
before there were schema versions. And the run-time side without the training stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bifsmn_tf.records import (
    KIND_FP32,
    KIND_STUDENT,
    ConversionManifest,
    DetectionEvaluation,
    EvaluationRecord,
    FlatbufferEntry,
    NewerSchemaError,
    RecordError,
    RunFailure,
    RunRecord,
    WidthEvaluation,
)


def _entry(file: str, kind: str = KIND_STUDENT, width: int | None = 8) -> FlatbufferEntry:
    return FlatbufferEntry(
        file=file,
        kind=kind,
        width=width,
        bytes=1000,
        names_stripped=True,
        input_shape=(32, 32),
        op_counts={"LceBconv2d": 18, "PRELU": 19},
        binary_convs=18,
        float_ops=40,
        verification={"clips": 10, "top1_agreement": 1.0, "required_agreement": 0.995},
    )


def _manifest(run_dir: Path) -> ConversionManifest:
    return ConversionManifest(
        input="features",
        input_shape=(32, 32),
        labels=("unknown", "silence", "yes"),
        widths=(8,),
        feature_config={"n_mels": 32},
        convert_config={"seed": 0},
        versions={"tensorflow": "2.16.2"},
        storage={"flatbuffer_ratio": 15.6},
        models=(_entry("student_w8.tflite"), _entry("teacher_fp32.tflite", KIND_FP32, None)),
        run_dir=run_dir,
        teacher_run=run_dir.parent / "teacher",
        profile="lean",
        task="v1-12",
        protocol="standard",
    )


def _evaluation(run_dir: Path, out_dir: Path) -> EvaluationRecord:
    return EvaluationRecord(
        run_dir=run_dir,
        kind="student",
        task="v1-12",
        protocol="standard",
        split="test",
        labels=("unknown", "silence", "yes"),
        data_root="/data/synth",
        num_examples=3,
        widths={
            "8": WidthEvaluation(
                accuracy=2 / 3,
                per_class={"yes": {"recall": 1.0, "precision": None, "support": 1}},
                confusion_matrix=((1, 0, 0), (0, 0, 1), (0, 0, 1)),
                confusion_png=out_dir / "confusion_w8.png",
            )
        },
        detection=DetectionEvaluation(
            protocol="bifsmn",
            num_examples=5,
            far_target=0.05,
            thresholds_from="validation",
            det_png=out_dir / "det.png",
            widths={"8": {"thresholds": {"pooled": None}}},
        ),
    )


def test_records_come_back_as_written_with_paths_relative_to_their_folder(tmp_path):
    student = tmp_path / "runs" / "student"
    records = {
        student / "run.json": RunRecord(
            kind="student",
            teacher_run=tmp_path / "runs" / "teacher",
            epochs=3,
            epochs_done=2,
            complete=False,
            best_epoch=1,
            failed=RunFailure(epoch=2, reason="loss nan"),
        ),
        student / "flatbuffers" / "manifest.json": _manifest(student),
        student / "eval" / "test-standard" / "evaluation.json": _evaluation(
            student, student / "eval" / "test-standard"
        ),
    }
    for path, record in records.items():
        record.save(path)
        assert type(record).load(path) == record
    stored = {path.name: json.loads(path.read_text()) for path in records}
    assert {data["schema_version"] for data in stored.values()} == {1}
    assert stored["run.json"]["teacher_run"] == "../teacher"
    assert (stored["manifest.json"]["run_dir"], stored["manifest.json"]["teacher_run"]) == ("..", "../../teacher")
    evaluation = stored["evaluation.json"]
    assert evaluation["run_dir"] == "../.."
    assert evaluation["widths"]["8"]["confusion_png"] == "confusion_w8.png"
    assert evaluation["detection"]["det_png"] == "det.png"
    assert evaluation["widths"]["8"]["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_a_moved_folder_resolves_its_paths_at_the_new_place(tmp_path):
    old = tmp_path / "old"
    RunRecord(kind="student", teacher_run=old / "teacher", epochs=1, epochs_done=1, complete=True).save(
        old / "student" / "run.json"
    )
    _manifest(old / "student").save(old / "student" / "flatbuffers" / "manifest.json")
    new = Path(shutil.move(old, tmp_path / "elsewhere" / "new"))
    assert RunRecord.load(new / "student" / "run.json").teacher_run == (new / "teacher").resolve()
    manifest = ConversionManifest.load(new / "student" / "flatbuffers" / "manifest.json")
    assert (manifest.run_dir, manifest.teacher_run) == ((new / "student").resolve(), (new / "teacher").resolve())


# What bifsmn-tf wrote before schema versions (schema 0): absolute paths, no schema_version.
SCHEMA_0 = {
    RunRecord: {
        "kind": "student",
        "teacher_run": "/work/runs/demo05/teacher",
        "epochs": 100,
        "epochs_done": 100,
        "complete": True,
        "best_epoch": 82,
    },
    ConversionManifest: {
        "input": "features",
        "input_shape": [32, 32],
        "labels": ["unknown", "silence", "yes"],
        "widths": [8],
        "feature_config": {"n_mels": 32},
        "convert_config": {"seed": 0},
        "versions": {"tensorflow": "2.16.2", "larq_compute_engine": "0.16.0"},
        "run_dir": "/work/runs/demo05/student",
        "teacher_run": "/work/runs/demo05/teacher",
        "profile": "lean",
        "task": "v1-12",
        "protocol": "standard",
        "storage": {"flatbuffer_ratio": 15.6},
        "models": [
            {
                "file": "student_w8.tflite",
                "kind": "student",
                "width": 8,
                "bytes": 152436,
                "names_stripped": True,
                "input_shape": [32, 32],
                "op_counts": {"LceBconv2d": 18},
                "binary_convs": 18,
                "float_ops": 60,
                "verification": {"clips": 1000, "top1_agreement": 1.0, "max_abs_logit_diff": 0.56},
            }
        ],
    },
    EvaluationRecord: {
        "widths": {
            "8": {
                "accuracy": 0.88,
                "per_class": {"yes": {"recall": 0.9, "precision": 0.8, "support": 120}},
                "confusion_matrix": [[1, 0], [0, 1]],
                "confusion_png": "/work/runs/demo05/student/eval/test-standard/confusion_w8.png",
            }
        },
        "num_examples": 1440,
        "task": "v1-12",
        "protocol": "standard",
        "split": "test",
        "labels": ["unknown", "silence", "yes"],
        "run_dir": "/work/runs/demo05/student",
        "kind": "student",
        "data_root": "/work/runs/demo05/data",
        "detection": {
            "protocol": "bifsmn",
            "num_examples": 3960,
            "far_target": 0.05,
            "thresholds_from": "validation",
            "det_png": "/work/runs/demo05/student/eval/test-standard/det.png",
            "widths": {"8": {}},
        },
    },
}


@pytest.mark.parametrize("kind", SCHEMA_0, ids=lambda kind: kind.__name__)
def test_records_of_schema_0_load_with_their_absolute_paths(kind, tmp_path):
    path = tmp_path / "moved" / kind.FILE
    path.parent.mkdir()
    path.write_text(json.dumps(SCHEMA_0[kind]))
    record = kind.load(path)
    if kind is EvaluationRecord:
        assert record.run_dir == Path("/work/runs/demo05/student")
        assert record.widths["8"].confusion_png == Path("/work/runs/demo05/student/eval/test-standard/confusion_w8.png")
        assert record.detection.det_png.name == "det.png" and record.widths["8"].confusion_matrix == ((1, 0), (0, 1))
    else:
        assert record.teacher_run == Path("/work/runs/demo05/teacher")
    # Written again, it is of the current schema, its paths relative to where it is now.
    record.save(path)
    assert json.loads(path.read_text())["schema_version"] == 1 and kind.load(path) == record


def _edited(kind, edit) -> dict:
    data = json.loads(json.dumps(SCHEMA_0[kind]))
    edit(data)
    return data


@pytest.mark.parametrize(
    "kind, edit, problem",
    [
        (RunRecord, lambda d: d.pop("epochs_done"), r"no 'epochs_done'"),
        (RunRecord, lambda d: d.update(epochs_done="100"), r"'epochs_done' must be an integer, got '100'"),
        (RunRecord, lambda d: d.update(epochs_done=True), r"'epochs_done' must be an integer, got True"),
        (RunRecord, lambda d: d.update(complete=1), r"'complete' must be true or false, got 1"),
        (RunRecord, lambda d: d.update(kind="gan"), r"'kind' must be one of \('teacher', 'student'\), got 'gan'"),
        (RunRecord, lambda d: d.update(teacher_run=None), r"'teacher_run' names the teacher of a student run"),
        (RunRecord, lambda d: d.update(failed={"epoch": 3}), r"failed: no 'reason'"),
        (RunRecord, lambda d: d.update(epochs_done=101), r"'epochs_done' must be from 0 to 'epochs' \(100\), got 101"),
        (RunRecord, lambda d: d.update(note="mine"), r"unknown fields \['note'\]"),
        (ConversionManifest, lambda d: d.update(labels="yes,no"), r"'labels' must be a list of strings, got 'yes,no'"),
        (ConversionManifest, lambda d: d.update(labels=[]), r"'labels' must list the classes"),
        (ConversionManifest, lambda d: d.update(input="wav"), r"'input' must be one of \('features', 'audio'\)"),
        (
            ConversionManifest,
            lambda d: d.update(models={"8": "student_w8.tflite"}),
            r"'models' must be a list of objects",
        ),
        (
            ConversionManifest,
            lambda d: d["models"][0].update(width=8.5),
            r"'models\[0\]\.width' must be an integer or null, got 8\.5",
        ),
        (
            ConversionManifest,
            lambda d: d["models"][0].update(width=None),
            r"models\[0\]: student_w8\.tflite: 'width' must be a positive integer for a student, got None",
        ),
        (
            ConversionManifest,
            lambda d: d["models"][0].update(file="../../secret"),
            r"'file' must be a file name in the manifest's folder",
        ),
        (
            ConversionManifest,
            lambda d: d["models"][0]["op_counts"].update(PRELU="19"),
            r"'models\[0\]\.op_counts\.PRELU' must be an integer, got '19'",
        ),
        (EvaluationRecord, lambda d: d["widths"]["8"].pop("accuracy"), r"widths\.8: no 'accuracy'"),
        (
            EvaluationRecord,
            lambda d: d["widths"]["8"].update(confusion_matrix=[1, 2]),
            r"'widths\.8\.confusion_matrix\[0\]' must be a list of integers, got 1",
        ),
        (EvaluationRecord, lambda d: d["detection"].update(det_png=7), r"'detection\.det_png' must be a path, got 7"),
    ],
)
def test_invalid_records_are_refused_naming_the_file_and_the_field(kind, edit, problem, tmp_path):
    path = tmp_path / kind.FILE
    path.write_text(json.dumps(_edited(kind, edit)))
    with pytest.raises(RecordError, match=f"^{path}: .*{problem}.*; not a {kind.WHAT}, or a damaged one"):
        kind.load(path)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", r"not valid JSON"),
        (b'{"kind": "stud', r"not valid JSON"),
        (b"\x89PNG\r\n\x1a\n\x00", r"not valid JSON"),
        (b"[1, 2]", r"expected a JSON object, got list; not a bifsmn-tf run record"),
        (b"null", r"expected a JSON object, got NoneType"),
        (b'{"schema_version": "1"}', r"'schema_version' must be an integer >= 0, got '1'"),
        (None, r"not found"),
    ],
)
def test_files_that_are_no_record_are_refused_naming_the_file(content, problem, tmp_path):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RecordError, match=f"^{path}: {problem}"):
        RunRecord.load(path)


def test_a_record_of_a_newer_schema_is_refused_rather_than_half_read(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**SCHEMA_0[RunRecord], "schema_version": 2, "new_field": []}))
    with pytest.raises(NewerSchemaError, match=rf"^{path}: schema_version 2: written by a newer bifsmn-tf .*upgrade"):
        RunRecord.load(path)


# The run-time verbs in a fresh interpreter, on a converted-models folder and a WAV file.
RUN_TIME_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from bifsmn_tf.cli import main
    models, wav = sys.argv[1], sys.argv[2]
    codes = [main(["listen", models, "--wav", wav, "--width", "8"]),
             main(["bench", models, "--runs", "2", "--warmup-runs", "0"])]
    print(json.dumps({"codes": codes, "modules": sorted(m for m in sys.modules if m.startswith("bifsmn_tf"))}))
    """
)


def test_listen_and_bench_load_nothing_of_the_training_stack(tmp_path):
    import larq_compute_engine as lce
    import numpy as np
    import tensorflow as tf
    from stream_models import write_converted

    import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
    from bifsmn_tf.data.audio import write_wav

    features = tf.keras.Input((32, 32))
    model = tf.keras.Model(features, tf.keras.layers.Dense(12)(tf.keras.layers.Flatten()(features)))
    models = write_converted(tmp_path / "models", {8: lce.convert_keras_model(model)})
    write_wav(tmp_path / "noise.wav", 0.01 * np.random.default_rng(0).normal(size=16000).astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-c", RUN_TIME_SCRIPT, str(models), str(tmp_path / "noise.wav")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0], result.stderr[-3000:]
    assert "bifsmn_tf.stream" in report["modules"] and "bifsmn_tf.bench" in report["modules"]
    heavy = [
        m for m in report["modules"] if m.startswith(("bifsmn_tf.training", "bifsmn_tf.convert", "bifsmn_tf.models"))
    ]
    assert heavy == []


def test_records_import_neither_tensorflow_nor_numpy():
    script = "import sys, bifsmn_tf.records; print(sorted({'tensorflow', 'numpy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
