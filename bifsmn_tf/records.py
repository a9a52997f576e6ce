"""Typed records of what the stages leave on disk: the run record, the evaluation record and the
conversion manifest.

Every stage that reads one of these files reads it through this module, so a file is parsed and
checked in one place and a damaged or foreign one is refused with its name and the problem:

- :class:`RunRecord`, ``RUN_DIR/run.json`` (:mod:`bifsmn_tf.training.run`): kind, teacher run,
  progress, best epoch, failure;
- :class:`EvaluationRecord`, ``evaluation.json`` (:mod:`bifsmn_tf.evaluate`): accuracy and
  detection figures per width;
- :class:`ConversionManifest`, ``manifest.json`` (:mod:`bifsmn_tf.convert`): the flatbuffers,
  their checks and storage figures, what they take and what they give.

**Paths** inside a record are stored relative to the record's own folder and held absolute in
memory, so a run folder (teacher, student, evaluations, flatbuffers) can be moved or copied to
another machine as a whole. Where the dataset lives is not such a path: a run's data config keeps
it as given, and ``--data`` points a moved run at its data.

**Schema versions.** Each record is written with a ``schema_version``. A record of a newer schema
is refused (upgrade bifsmn-tf) rather than half-read. Schema 0 is what bifsmn-tf wrote before this
module: no ``schema_version``, the same fields, absolute paths, which are taken as they are.

Only the standard library is imported here: the run-time side (``bifsmn-tf listen``/``bench``,
``deploy/pi_benchmark.py``) reads manifests without TensorFlow or the training stack.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bifsmn_tf.config import ConfigError
from bifsmn_tf.fileio import atomic_write_text

RUN_RECORD = "run.json"
EVALUATION = "evaluation.json"
MANIFEST = "manifest.json"

RUN_KINDS = ("teacher", "student")
#: What converted flatbuffers take: log-mel features, or raw audio with the frontend inside.
INPUTS = ("features", "audio")
KIND_STUDENT = "student"
KIND_FP32 = "teacher_fp32"
KIND_INT8 = "teacher_int8"
FLATBUFFER_KINDS = (KIND_STUDENT, KIND_FP32, KIND_INT8)

P = TypeVar("P", bound="Part")
R = TypeVar("R", bound="Record")


class RecordError(ConfigError):
    """A record (or a value for one) is invalid; read from a file, the message names the file."""


class NewerSchemaError(RecordError):
    """The record was written by a newer bifsmn-tf: not damaged, only not readable here."""


@dataclasses.dataclass(frozen=True)
class Part:
    """A typed JSON object: a record, or an object nested in one.

    Fields are checked against their annotations when read (``bool``, ``int``, ``float``,
    ``str``, :class:`~pathlib.Path`, ``X | None``, ``tuple[X, ...]``, ``dict[str, X]``, ``Any``
    and nested parts); a field with a default may be absent. Unknown fields are an error.
    """

    def to_dict(self, folder: str | Path) -> dict[str, Any]:
        """The JSON object of this part.

        Args:
            folder: Where the record is written: its paths are stored relative to it.
        """
        return {f.name: _encode(getattr(self, f.name), Path(folder)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[P], data: Any, folder: str | Path, where: str = "") -> P:
        """The part ``data`` describes.

        Args:
            data: The JSON object, as read.
            folder: Where the record was read from: its relative paths start there.
            where: The part's place inside its record, for errors (e.g. ``models[0]``).

        Raises:
            RecordError: A field is missing, unknown, or of the wrong type or value.
        """
        if not isinstance(data, dict):
            raise RecordError(_wrong(where, "an object", data) if where else _not_an_object(data))
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise RecordError(f"{_at(where)}unknown fields {unknown}")
        values = {}
        for name, field in fields.items():
            if name in data:
                values[name] = _decode(data[name], hints[name], _join(where, name), Path(folder))
            elif field.default is dataclasses.MISSING:
                raise RecordError(f"{_at(where)}no {name!r}")
        try:
            return cls(**values)
        except RecordError as err:
            raise RecordError(f"{_at(where)}{err}") from None

    def replace(self: P, **changes: Any) -> P:
        """This part with the fields ``changes`` names set to new values."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Record(Part):
    """A part that is a file of its own: ``schema_version``, :meth:`save` and :meth:`load`."""

    #: The file name the record has in its folder.
    FILE: ClassVar[str]
    #: What the record is, for errors about a file that is not one.
    WHAT: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1

    def to_dict(self, folder: str | Path) -> dict[str, Any]:
        return {"schema_version": self.SCHEMA_VERSION, **super().to_dict(folder)}

    @classmethod
    def from_dict(cls: type[R], data: Any, folder: str | Path, where: str = "") -> R:
        if isinstance(data, dict):
            data = dict(data)
            # Schema 0 wrote none: today's fields, with absolute paths, which resolve as they are.
            version = data.pop("schema_version", 0)
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise RecordError(_wrong("schema_version", "an integer >= 0", version))
            if version > cls.SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"schema_version {version}: written by a newer bifsmn-tf (this one reads "
                    f"{cls.WHAT}s up to version {cls.SCHEMA_VERSION}); upgrade bifsmn-tf"
                )
        return super().from_dict(data, folder, where)

    def save(self, path: str | Path) -> Path:
        """Write the record to ``path`` atomically, its paths relative to ``path``'s folder."""
        path = Path(path)
        return atomic_write_text(path, json.dumps(self.to_dict(path.parent), indent=2) + "\n")

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        """The record in the file ``path``.

        Raises:
            NewerSchemaError: Naming ``path``: written by a newer bifsmn-tf.
            RecordError: Naming ``path``: missing or unreadable, not JSON, or not a valid record
                (the message says which field is wrong and how).
        """
        path = Path(path)
        try:
            # Bytes: a binary file is then a decode error like any other bad JSON.
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise RecordError(f"{path}: not found") from None
        except OSError as err:
            raise RecordError(f"{path}: cannot read it ({err.strerror or err})") from None
        except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
            raise RecordError(f"{path}: not valid JSON ({err}); {cls._damaged()}") from None
        try:
            return cls.from_dict(data, path.parent)
        except NewerSchemaError as err:
            raise NewerSchemaError(f"{path}: {err}") from None
        except RecordError as err:
            raise RecordError(f"{path}: {err}; {cls._damaged()}") from None

    @classmethod
    def _damaged(cls) -> str:
        return f"not a {cls.WHAT}, or a damaged one"


# --- the run record -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunFailure(Part):
    """Why a run stopped for good: the epoch (from 0) whose losses or weights went non-finite."""

    epoch: int
    reason: str


@dataclasses.dataclass(frozen=True)
class RunRecord(Record):
    """``RUN_DIR/run.json``: what a training run is and how far it got.

    Attributes:
        kind: ``teacher`` or ``student``.
        teacher_run: the teacher run a student was distilled from (``None`` for a teacher);
            stored relative to the run, so teacher and student move together.
        epochs: epochs the run is to train.
        epochs_done: epochs committed so far.
        complete: all epochs are done.
        best_epoch: the epoch (from 0) of the model in ``RUN_DIR/model``; ``None`` before one.
        failed: set when training diverged; such a run is not resumed.
    """

    FILE: ClassVar[str] = RUN_RECORD
    WHAT: ClassVar[str] = "bifsmn-tf run record"

    kind: str
    teacher_run: Path | None
    epochs: int
    epochs_done: int
    complete: bool
    best_epoch: int | None = None
    failed: RunFailure | None = None

    def __post_init__(self) -> None:
        _require_one_of("kind", self.kind, RUN_KINDS)
        if (self.kind == "student") != (self.teacher_run is not None):
            raise RecordError("'teacher_run' names the teacher of a student run, and only of one")
        if not 0 <= self.epochs_done <= self.epochs:
            raise RecordError(f"'epochs_done' must be from 0 to 'epochs' ({self.epochs}), got {self.epochs_done}")


# --- the evaluation record ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WidthEvaluation(Part):
    """Accuracy of one width: overall, per class (``recall``, ``precision``, ``support``), the
    confusion matrix (row: true label, column: predicted) and its plot."""

    accuracy: float
    per_class: dict[str, dict[str, Any]]
    confusion_matrix: tuple[tuple[int, ...], ...]
    confusion_png: Path


@dataclasses.dataclass(frozen=True)
class DetectionEvaluation(Part):
    """Keywords against non-keyword speech: every non-keyword clip of the split kept
    (``protocol``), thresholds chosen on ``thresholds_from`` for ``far_target``; ``widths`` holds
    a :func:`bifsmn_tf.detection.detection_summary` per width, ``det_png`` their DET curves;
    ``unseen_words`` a :func:`bifsmn_tf.detection.unseen_word_accepts` per width, for the test
    split of a set with words no model heard, else ``None``."""

    protocol: str
    num_examples: int
    far_target: float
    thresholds_from: str
    det_png: Path
    widths: dict[str, dict[str, Any]]
    unseen_words: dict[str, dict[str, Any]] | None = None


@dataclasses.dataclass(frozen=True)
class EvaluationRecord(Record):
    """``evaluation.json``: every trained width of a run's best model on one split.

    Attributes:
        run_dir: the run evaluated.
        kind: the run's kind.
        task: the label set, e.g. ``v1-12``; ``labels`` are its classes in model order.
        protocol: the split's silence/unknown composition the accuracy was measured on.
        split: ``test``, ``validation``, ``train`` or ``official_test``.
        data_root: the dataset evaluated on, as the run's data config gave it.
        num_examples: clips scored for accuracy.
        widths: accuracy per width (``"8"``, ``"4"``, ...), widest first.
        detection: the detection figures (see :class:`DetectionEvaluation`).
    """

    FILE: ClassVar[str] = EVALUATION
    WHAT: ClassVar[str] = "bifsmn-tf evaluation record"

    run_dir: Path
    kind: str
    task: str
    protocol: str
    split: str
    labels: tuple[str, ...]
    data_root: str
    num_examples: int
    widths: dict[str, WidthEvaluation]
    detection: DetectionEvaluation

    def __post_init__(self) -> None:
        _require_one_of("kind", self.kind, RUN_KINDS)


# --- the conversion manifest ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlatbufferEntry(Part):
    """One flatbuffer of a conversion.

    Attributes:
        file: its name in the manifest's folder.
        kind: ``student``, ``teacher_fp32`` or ``teacher_int8``.
        width: the student's width; ``None`` for the teachers.
        bytes: its size.
        names_stripped: tensor names were removed (the outputs stayed bit-identical).
        input_shape: what it takes at batch 1, without the batch axis.
        op_counts: its operators by name; ``binary_convs`` counts ``LceBconv2d``, ``float_ops``
            the builtin ops that compute in float32.
        verification: its check against Keras (:func:`bifsmn_tf.convert.compare`'s record and
            the ``required_agreement``; ``{}`` for a flatbuffer listed without one).
    """

    file: str
    kind: str
    width: int | None
    bytes: int
    names_stripped: bool
    input_shape: tuple[int, ...]
    op_counts: dict[str, int]
    binary_convs: int
    float_ops: int
    verification: dict[str, Any]

    def __post_init__(self) -> None:
        # The spotter opens what this names: nothing outside the manifest's folder.
        if not self.file or Path(self.file).name != self.file or self.file in (".", ".."):
            raise RecordError(f"'file' must be a file name in the manifest's folder, got {self.file!r}")
        _require_one_of("kind", self.kind, FLATBUFFER_KINDS)
        if self.kind == KIND_STUDENT and (self.width is None or self.width < 1):
            raise RecordError(f"{self.file}: 'width' must be a positive integer for a student, got {self.width!r}")


@dataclasses.dataclass(frozen=True)
class ConversionManifest(Record):
    """``manifest.json`` of ``bifsmn-tf convert``: the flatbuffers and how they were made.

    Attributes:
        input: ``features`` or ``audio`` (the frontend is inside the flatbuffers).
        input_shape: what every flatbuffer takes, without the batch axis.
        labels: the classes of the outputs, in order.
        widths: the student widths converted, widest first.
        feature_config: the frontend's :class:`~bifsmn_tf.features.FeatureConfig` as a dict.
        convert_config: the :class:`~bifsmn_tf.convert.ConvertConfig` as a dict.
        versions: of TensorFlow and LCE.
        storage: the storage ratios against the FP32 baseline
            (:data:`bifsmn_tf.storage.STORAGE_NOTE` says how they are counted).
        models: every flatbuffer written.
        run_dir: the student run converted, for a conversion of a run
            (:func:`~bifsmn_tf.convert.convert_run`; ``None`` otherwise, as the next four).
        teacher_run: its teacher run.
        profile: the network profile of both.
        task: the label set the run was trained on.
        protocol: the run's silence/unknown composition.
    """

    FILE: ClassVar[str] = MANIFEST
    WHAT: ClassVar[str] = "manifest of `bifsmn-tf convert`"

    input: str
    input_shape: tuple[int, ...]
    labels: tuple[str, ...]
    widths: tuple[int, ...]
    feature_config: dict[str, Any]
    convert_config: dict[str, Any]
    versions: dict[str, str]
    storage: dict[str, Any]
    models: tuple[FlatbufferEntry, ...]
    run_dir: Path | None = None
    teacher_run: Path | None = None
    profile: str | None = None
    task: str | None = None
    protocol: str | None = None

    def __post_init__(self) -> None:
        _require_one_of("input", self.input, INPUTS)
        if not self.labels:
            raise RecordError("'labels' must list the classes, got none")

    def students(self) -> dict[int, FlatbufferEntry]:
        """The student flatbuffers by width, widest first."""
        students = {e.width: e for e in self.models if e.kind == KIND_STUDENT}
        return dict(sorted(students.items(), reverse=True))

    def entry(self, kind: str, width: int | None = None) -> FlatbufferEntry:
        """The flatbuffer of ``kind`` (and ``width``, for a student).

        Raises:
            KeyError: the conversion did not write one.
        """
        for entry in self.models:
            if entry.kind == kind and entry.width == width:
                return entry
        raise KeyError(f"no {kind} flatbuffer" + ("" if width is None else f" of width {width}"))


# --- reading and writing fields -------------------------------------------------------------------

_KINDS_OF_VALUES = {
    bool: ("true or false", "booleans"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    Path: ("a path", "paths"),
}


def _decode(value: Any, hint: Any, where: str, folder: Path) -> Any:
    """``value`` read from JSON as the type ``hint``; relative paths are taken from ``folder``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        (other,) = [a for a in args if a is not type(None)]  # only ``X | None`` is used
        if value is None:
            return None
        if other in _KINDS_OF_VALUES and not _is_a(value, other):
            raise RecordError(_wrong(where, _describe(hint), value))
        return _decode(value, other, where, folder)
    if isinstance(hint, type) and issubclass(hint, Part):
        return hint.from_dict(value, folder, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecordError(_wrong(where, _describe(hint), value))
        return tuple(_decode(item, args[0], f"{where}[{i}]", folder) for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(_wrong(where, "an object", value))
        return {key: _decode(item, args[1], _join(where, key), folder) for key, item in value.items()}
    if not _is_a(value, hint):
        raise RecordError(_wrong(where, _describe(hint), value))
    if hint is Path:
        return _absolute(value, folder)
    return float(value) if hint is float else value


def _is_a(value: Any, hint: type) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # JSON's true is no number
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, str if hint is Path else hint)


def _encode(value: Any, folder: Path) -> Any:
    if isinstance(value, Part):
        return value.to_dict(folder)
    if isinstance(value, Path):
        return relative_path(value, folder)
    if isinstance(value, (tuple, list)):
        return [_encode(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v, folder) for k, v in value.items()}
    return value


def relative_path(path: Path, folder: Path) -> str:
    """``path`` as a record in ``folder`` stores it: relative, so that both move together."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # on another drive (Windows): there is no relative path
        return str(path.resolve())


def _absolute(text: str, folder: Path) -> Path:
    """A path stored in a record in ``folder``; an absolute one (schema 0) stays as it is."""
    return (folder.resolve() / text).resolve()


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (other,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_describe(other)} or null"
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        plural = "lists" if typing.get_origin(item) is tuple else _KINDS_OF_VALUES.get(item, ("", "objects"))[1]
        return f"a list of {plural}"
    return _KINDS_OF_VALUES.get(hint, ("an object", ""))[0]


def _require_one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecordError(f"{name!r} must be one of {choices}, got {value!r}")


def _wrong(where: str, expected: str, value: Any) -> str:
    shown = repr(value)
    return f"{where!r} must be {expected}, got {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _not_an_object(value: Any) -> str:
    return f"expected a JSON object, got {type(value).__name__}"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _at(where: str) -> str:
    return f"{where}: " if where else ""
