"""Hostile inputs to the stages that write and read training runs: train-teacher, train,
evaluate, convert and the ``--out``/``--json`` outputs of every verb; and the same runs used by
another user than the one who made them, moved to another folder, or as the previous bifsmn-tf
recorded them.

Each row of ``CASES`` damages a copy of a real (tiny) run, or gives a bad flag, and expects a
one-line error naming the culprit before any work is done (``tests/hostile.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hostile import Case, check_case, ids, run_cli

import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)
from bifsmn_tf.records import MANIFEST, ConversionManifest, EvaluationRecord
from bifsmn_tf.training import run
from bifsmn_tf.training.presets import PRESETS

SMALL_MODEL = {"frontend_channels": 4, "hidden_size": 32, "memory_size": 16}
#: The student of the module's runs, as a user would type it (``{teacher}``/``{out}`` filled in).
STUDENT_ARGV = (
    "train",
    "--teacher",
    "{teacher}",
    "--out",
    "{out}",
    "--preset",
    "demo",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--widths",
    "8",
    "--no-progress",
)
NOBODY = 65534


def student_argv(teacher: Path, out: Path) -> list[str]:
    return [a.format(teacher=teacher, out=out) for a in STUDENT_ARGV]


@pytest.fixture(scope="module")
def world_readable_dir():
    """A folder every user can enter (pytest's own temporary folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bifsmn-hostile-runs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def paths(synth_dataset, world_readable_dir) -> dict[str, Path]:
    """A one-epoch teacher (API, narrow layers) and its one-epoch student (CLI), made by the
    user running the tests with the default umask, in ``world_readable_dir``."""
    root = world_readable_dir
    data = shutil.copytree(synth_dataset, root / "data", symlinks=True)
    cache = root / "cache"
    previous = os.environ.get("BIFSMN_DATA")
    os.environ["BIFSMN_DATA"] = str(cache)  # the runs record no cache location: each user has his own
    try:
        preset = PRESETS["demo"].with_options(teacher={"epochs": 1, "batch_size": 8, "learning_rate": 0.005})
        configs = run.teacher_configs(data, preset)
        configs = dataclasses.replace(configs, model=configs.model.replace(**SMALL_MODEL))
        run.train(root / "teacher", configs, progress=False)
        result = run_cli(student_argv(root / "teacher", root / "student"))
        assert result.code == 0, result.err
    finally:
        if previous is None:
            os.environ.pop("BIFSMN_DATA")
        else:
            os.environ["BIFSMN_DATA"] = previous
    return {"root": root, "data": data, "teacher": root / "teacher", "student": root / "student"}


# --- damage, applied to a copy of a run ---------------------------------------------------------


def copy_run(paths: dict[str, Path], tmp: Path, kind: str = "teacher") -> Path:
    return Path(shutil.copytree(paths[kind], tmp / kind, symlinks=True))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def with_run_json(kind: str, text: str):
    def argv(paths, tmp):
        copy = copy_run(paths, tmp, kind)
        (copy / run.RUN_INFO).write_text(text)
        return ["evaluate", copy, "--no-progress"]

    return argv


def with_damaged_file(kind: str, relative: str, keep: float):
    def argv(paths, tmp):
        copy = copy_run(paths, tmp, kind)
        truncate(copy / relative, keep)
        return ["evaluate", copy, "--no-progress"]

    return argv


def convert_damaged_student(relative: str, keep: float):
    """``convert`` on a copy of the student (beside a copy of its teacher) whose ``relative`` file
    was cut to ``keep`` of its bytes."""

    def argv(paths, tmp):
        copy_run(paths, tmp, "teacher")
        copy = copy_run(paths, tmp, "student")
        truncate(copy / relative, keep)
        return ["convert", copy, "--out", tmp / "fb"]

    return argv


def teacher_record(**changes):
    """``train --teacher`` on a copy of the teacher whose run.json has ``changes``."""

    def argv(paths, tmp):
        copy = copy_run(paths, tmp)
        info = json.loads((copy / run.RUN_INFO).read_text())
        info.update(changes)
        (copy / run.RUN_INFO).write_text(json.dumps(info))
        return student_argv(copy, tmp / "new-student")

    return argv


def nothing_made(name: str):
    def check(paths, tmp):
        assert not (tmp / name).exists(), f"{tmp / name} was left behind"

    return check


def a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("not a directory\n")
    return path


def resume_with_damaged_checkpoint(paths, tmp):
    copy = copy_run(paths, tmp, "student")
    truncate(copy / run.CHECKPOINTS / "ckpt-1.index", 0.3)
    return student_argv(paths["teacher"], copy)


CASES = [
    # Non-finite and out-of-range numbers: refused by argparse or the configs, before a run exists.
    *[
        Case(
            f"train-teacher --{flag} {value}",
            lambda p, t, flag=flag, value=value: [
                "train-teacher",
                "--data",
                p["data"],
                "--out",
                t / "run",
                f"--{flag}={value}",
            ],
            expect=(message,),
            check=nothing_made("run"),
        )
        for flag, value, message in [
            ("lr", "nan", "--lr: 'nan' is not a finite number"),
            ("lr", "inf", "not a finite number"),
            ("lr", "-1", "learning_rate must be > 0, got -1.0"),
            ("lr", "0", "learning_rate must be > 0"),
            ("weight-decay", "-inf", "not a finite number"),
            ("weight-decay", "-0.1", "weight_decay must be >= 0"),
            ("lr", "fast", "not a number"),
            ("train-unknown-share", "nan", "not a finite number"),
            ("train-unknown-share", "0", "train_unknown_share must be a positive number"),
            ("train-run-on-share", "-1", "train_run_on_share must be a number >= 0"),
        ]
    ],
    *[
        Case(
            f"train --{flag} {value}",
            lambda p, t, flag=flag, value=value: [*student_argv(p["teacher"], t / "run"), f"--{flag}={value}"],
            expect=(message,),
            check=nothing_made("run"),
        )
        for flag, value, message in [
            ("gamma", "nan", "not a finite number"),
            ("gamma", "-1", "gamma must be >= 0"),
            ("logit-distill", "inf", "not a finite number"),
            ("logit-distill", "1.5", r"logit_distill must be in \[0, 1\]"),
            ("fe3-input-thresholds", "nan", "--fe3-input-thresholds: 'nan' is not a finite number"),
            ("fc1-input-thresholds", "inf", "not a finite number"),
            ("fc1-input-thresholds", "0.5,-0.5", r"'0\.5,-0\.5' is not a number"),
            ("widths", "8,4", "--widths: invalid int value: '8,4'"),
        ]
    ],
    # RUN_DIR that is no run, or a damaged one.
    Case("evaluate RUN_DIR is a file", lambda p, t: ["evaluate", a_file(t)], expect=("a-file is a file",)),
    Case("evaluate RUN_DIR does not exist", lambda p, t: ["evaluate", t / "nothing"], expect=("does not exist",)),
    Case("convert RUN_DIR is a file", lambda p, t: ["convert", a_file(t)], expect=("a-file is a file",)),
    Case("evaluate empty run.json", with_run_json("teacher", ""), expect=(r"run\.json: not valid JSON", "damaged")),
    Case("evaluate truncated run.json", with_run_json("student", '{"kind": "stud'), expect=("not valid JSON",)),
    Case("evaluate run.json is a list", with_run_json("teacher", "[1, 2]"), expect=("not a bifsmn-tf run record",)),
    Case(
        "evaluate run.json of another tool",
        with_run_json("teacher", '{"kind": "gan"}'),
        expect=("not a bifsmn-tf run record",),
    ),
    Case(
        "evaluate truncated weights data",
        with_damaged_file("teacher", "model/weights.data-00000-of-00001", 0.5),
        expect=("saved weights cannot be read", "damaged"),
    ),
    Case(
        "evaluate truncated weights index",
        with_damaged_file("student", "model/weights.index", 0.5),
        expect=("saved weights cannot be read",),
    ),
    Case(
        "evaluate empty weights index",
        with_damaged_file("teacher", "model/weights.index", 0.0),
        expect=("saved weights cannot be read",),
    ),
    Case(
        "evaluate truncated model.json",
        with_damaged_file("teacher", "model/model.json", 0.5),
        expect=(r"model\.json: not valid JSON",),
    ),
    Case(
        "convert truncated weights",
        convert_damaged_student("model/weights.data-00000-of-00001", 0.3),
        expect=("saved weights cannot be read",),
        check=nothing_made("fb"),
    ),
    Case(
        "convert a student copied without its teacher",
        lambda p, t: ["convert", copy_run(p, t, "student"), "--out", t / "fb"],
        expect=("its teacher run is not at .*/teacher", "move or copy the two together"),
        check=nothing_made("fb"),
    ),
    Case(
        "train resumes from a truncated checkpoint",
        resume_with_damaged_checkpoint,
        expect=("last checkpoint cannot be read", "ckpt"),
    ),
    # --teacher must be a finished, sound teacher run; nothing is made otherwise.
    Case(
        "train --teacher is a student run",
        lambda p, t: student_argv(p["student"], t / "new-student"),
        expect=("is a student run",),
        check=nothing_made("new-student"),
    ),
    Case(
        "train --teacher unfinished",
        teacher_record(complete=False, epochs_done=0, epochs=40),
        expect=("finished 0 of 40 epochs", "resumes"),
        check=nothing_made("new-student"),
    ),
    Case(
        "train --teacher failed",
        teacher_record(complete=False, failed={"epoch": 0, "reason": "loss nan"}),
        expect=("failed", "loss nan"),
        check=nothing_made("new-student"),
    ),
    Case(
        "train --teacher damaged run.json",
        lambda p, t: (lambda copy: ((copy / run.RUN_INFO).write_text("{"), student_argv(copy, t / "new-student"))[1])(
            copy_run(p, t)
        ),
        expect=("not valid JSON",),
        check=nothing_made("new-student"),
    ),
    Case(
        "train --teacher does not exist",
        lambda p, t: student_argv(t / "nothing", t / "new-student"),
        expect=("does not exist",),
        check=nothing_made("new-student"),
    ),
    Case(
        "train --teacher without its model",
        lambda p, t: (lambda copy: (os.unlink(copy / run.MODEL), student_argv(copy, t / "new-student"))[1])(
            copy_run(p, t)
        ),
        expect=("model/ is missing",),
        check=nothing_made("new-student"),
    ),
    # Outputs that cannot be written are refused at start.
    Case(
        "train-teacher --out is a file",
        lambda p, t: ["train-teacher", "--data", p["data"], "--out", a_file(t)],
        expect=("--out .*a-file is a file",),
    ),
    Case(
        "train-teacher --out under a file",
        lambda p, t: ["train-teacher", "--data", p["data"], "--out", a_file(t) / "run"],
        expect=("which is a file",),
    ),
    Case("train --out is a file", lambda p, t: student_argv(p["teacher"], a_file(t)), expect=("is a file",)),
    Case("convert --out is a file", lambda p, t: ["convert", p["student"], "--out", a_file(t)], expect=("is a file",)),
    Case(
        "convert --out under a file",
        lambda p, t: ["convert", p["student"], "--out", a_file(t) / "x" / "y"],
        expect=("which is a file",),
    ),
    Case(
        "evaluate --json is a directory",
        lambda p, t: ["evaluate", p["teacher"], "--json", t],
        expect=("--json .* is a directory",),
    ),
    Case(
        "evaluate --json under a file",
        lambda p, t: ["evaluate", p["teacher"], "--json", a_file(t) / "e.json"],
        expect=("which is a file",),
    ),
    Case(
        "evaluate --out is a file", lambda p, t: ["evaluate", p["teacher"], "--out", a_file(t)], expect=("is a file",)
    ),
    Case(
        "bench --json under a file",
        lambda p, t: ["bench", t / "none.tflite", "--json", a_file(t) / "b.json"],
        expect=("which is a file",),
    ),
    Case(
        "listen --json under a file",
        lambda p, t: ["listen", t, "--wav", t / "x.wav", "--json", a_file(t) / "l.json"],
        expect=("which is a file",),
    ),
    Case("demo --out is a file", lambda p, t: ["demo", "--out", a_file(t)], expect=("is a file",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_hostile_run_input(case, paths, tmp_path):
    check_case(case, paths, tmp_path)


def test_a_run_that_goes_non_finite_is_recorded_as_failed_and_refused(paths, tmp_path, monkeypatch):
    monkeypatch.setenv("BIFSMN_DATA", str(paths["root"] / "cache"))
    preset = PRESETS["demo"].with_options(
        teacher={"epochs": 2, "batch_size": 8, "learning_rate": 1e30, "optimizer": "sgd"}
    )
    configs = run.teacher_configs(paths["data"], preset)
    configs = dataclasses.replace(configs, model=configs.model.replace(**SMALL_MODEL))
    with pytest.raises(run.RunError, match="diverged in epoch 1 .*recorded as failed"):
        run.train(tmp_path / "diverged", configs, progress=False)
    info = json.loads((tmp_path / "diverged" / run.RUN_INFO).read_text())
    assert info["complete"] is False and info["failed"]["epoch"] == 0, info
    assert "not finite" in info["failed"]["reason"] or "nan" in info["failed"]["reason"], info
    with pytest.raises(run.RunError, match="this run failed in epoch 1"):
        run.train(tmp_path / "diverged", configs, progress=False)
    with pytest.raises(run.RunError, match="this teacher run failed"):
        run.student_configs(tmp_path / "diverged", PRESETS["demo"])


def test_saved_runs_are_readable_by_every_user(paths):
    """Every file of a run is readable, every folder enterable, by others (the default umask
    lets them): the ``model`` symlink once changed its target folder to 0644."""
    assert (paths["teacher"] / run.MODEL).is_symlink()
    for kind in ("teacher", "student"):
        for path in [paths[kind], *paths[kind].rglob("*")]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            needed = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
            assert mode & needed == needed, f"{path}: {stat.filemode(mode)}"


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root (CI runs as root)")
def test_another_user_reads_trains_from_and_evaluates_the_runs(paths):
    """As an unprivileged user: evaluate the teacher made by root (its own folder is not
    writable to him: refused until --out), train a student from it (which reads its own best
    model back), synthesize into root's folder (refused, naming it)."""
    own = paths["root"] / "nobody"
    own.mkdir()
    os.chown(own, NOBODY, NOBODY)
    commands = [
        [2, ["evaluate", str(paths["teacher"]), "--no-progress"]],
        [0, ["evaluate", str(paths["teacher"]), "--out", str(own / "teacher-eval"), "--no-progress"]],
        # Its training reads back its own best model through RUN_DIR/model at the end.
        [0, student_argv(paths["teacher"], own / "student")],
        [2, ["data", "synth", "--out", str(paths["root"] / "synth"), "--no-progress"]],
    ]
    env = {**os.environ, "HOME": str(own), "MPLCONFIGDIR": str(own / "mpl"), "BIFSMN_DATA": str(own / "cache")}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("as_user.py")), str(NOBODY), json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "permission denied" in result.stderr and "--out" in result.stderr
    assert re.search(r"synth: error: --out .*/synth: cannot create it in .* \(permission denied\)", result.stderr), (
        result.stderr
    )
    assert (own / "student" / run.MODEL / run.SELECTION).is_file()
    assert json.loads((own / "student" / run.RUN_INFO).read_text())["complete"] is True


# --- runs moved or made by the previous code ------------------------------------------------------

#: A quick conversion: few clips to check against Keras and to calibrate the int8 teacher on.
QUICK_CONVERT = ("--verify-clips", "20", "--calibration-clips", "8")


def _succeeds(argv: list) -> str:
    result = run_cli(argv)
    assert result.code == 0, f"bifsmn-tf {' '.join(map(str, argv))}\n{result.out}\n{result.err}"
    return result.out


def _moved_runs(paths: dict[str, Path], tmp: Path) -> Path:
    """The folder holding copies of the teacher and the student, moved after the copy."""
    for kind in ("teacher", "student"):
        shutil.copytree(paths[kind], tmp / "copy" / kind, symlinks=True)
    return Path(shutil.move(tmp / "copy", tmp / "elsewhere" / "moved"))


def test_a_moved_run_folder_finds_its_teacher_and_evaluates_at_its_new_place(paths, tmp_path):
    moved = _moved_runs(paths, tmp_path)
    student = moved / "student"
    assert run.read_run_info(student).teacher_run == (moved / "teacher").resolve()
    assert run.check_teacher_run(moved / "teacher").complete  # what `train --teacher` reads
    _succeeds(["evaluate", student, "--no-progress"])
    (evaluation,) = student.glob(f"eval/*/{EvaluationRecord.FILE}")
    record = EvaluationRecord.load(evaluation)
    assert record.run_dir == student.resolve() and record.detection.det_png.parent == evaluation.parent.resolve()


@pytest.mark.slow  # two conversions: 2-3 minutes on 2 busy cores
def test_a_moved_run_folder_converts_listens_and_benches_at_its_new_place(paths, tmp_path):
    """Teacher and student copied elsewhere and moved, converted there, moved again: each stage
    finds the teacher, the flatbuffers and its own outputs by the records' relative paths."""
    moved = _moved_runs(paths, tmp_path)
    _succeeds(["convert", moved / "student", *QUICK_CONVERT])

    again = Path(shutil.move(moved, tmp_path / "again"))
    student, flatbuffers = again / "student", again / "student" / "flatbuffers"
    manifest = ConversionManifest.load(flatbuffers / MANIFEST)
    assert (manifest.run_dir, manifest.teacher_run) == (student.resolve(), (again / "teacher").resolve())
    wav = next(paths["data"].rglob("yes/*.wav"))
    assert "detection(s); width 8:" in _succeeds(["listen", flatbuffers, "--wav", wav, "--width", "8"])
    assert "student_w8.tflite" in _succeeds(["bench", flatbuffers, "--runs", "2", "--warmup-runs", "0"])
    # Converted again from here, every file is the one checked before the move.
    assert _succeeds(["convert", student, *QUICK_CONVERT]).count(": reused (") == 3


def test_runs_recorded_by_the_previous_code_are_still_read(paths, tmp_path):
    """Runs as bifsmn-tf wrote them before records had schema versions: run.json with the
    teacher's absolute path, saved models' records under their old name."""
    teacher = Path(shutil.copytree(paths["teacher"], tmp_path / "old" / "teacher", symlinks=True))
    student = Path(shutil.copytree(paths["student"], tmp_path / "old" / "student", symlinks=True))
    for run_dir in (teacher, student):
        record = json.loads((run_dir / run.RUN_INFO).read_text())
        del record["schema_version"]
        if record["teacher_run"] is not None:
            record["teacher_run"] = str(paths["teacher"].resolve())
        (run_dir / run.RUN_INFO).write_text(json.dumps(record))
        (run_dir / run.MODEL / "model.json").rename(run_dir / run.MODEL / "model_config.json")
    assert run.read_run_info(student).teacher_run == paths["teacher"].resolve()
    assert run.check_teacher_run(teacher).complete
    _succeeds(["evaluate", student, "--no-progress"])
