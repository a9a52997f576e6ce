"""The JSON round trip shared by every stage's config dataclass.

Each stage keeps its own dataclass next to its code (``FeatureConfig`` in ``features``,
``DataConfig`` in ``data.pipeline``, ...); they all inherit :class:`JsonConfig`, so that any
artefact can carry the exact settings that made it and be rebuilt without the code's defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, TypeVar

from bifsmn_tf.fileio import atomic_write_text

T = TypeVar("T", bound="JsonConfig")


class ConfigError(ValueError):
    """A config file or dict does not describe a valid config."""


@dataclasses.dataclass(frozen=True)
class JsonConfig:
    """Base for frozen config dataclasses: ``to_dict``/``from_dict``/``save``/``load``.

    Nested ``JsonConfig`` fields are converted recursively; tuples are stored as JSON lists and
    come back as tuples. Unknown keys are an error rather than silently dropped, so a config
    written by a newer version is never half-read.
    """

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_dict() if isinstance(value, JsonConfig) else _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(fields)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            default = _default_of(fields[name])
            if isinstance(default, JsonConfig):
                kwargs[name] = type(default).from_dict(value)
            elif isinstance(default, tuple) and isinstance(value, list):
                kwargs[name] = tuple(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        return cls.from_dict(read_json(path, missing="config file not found"))


def non_finite_fields(config: JsonConfig) -> list[str]:
    """Fields of ``config`` holding NaN or an infinity (alone or inside a tuple).

    ``float("nan")`` passes every range check written as a comparison (``nan <= 0`` is false),
    so a config states finiteness first: ``--lr nan`` once trained a model of NaN weights.
    """

    def finite(value: Any) -> bool:
        if isinstance(value, tuple):
            return all(finite(v) for v in value)
        return not isinstance(value, float) or math.isfinite(value)

    return [f.name for f in dataclasses.fields(config) if not finite(getattr(config, f.name))]


def read_json(path: str | Path, missing: str = "not found") -> Any:
    """The JSON content of ``path``; a missing or malformed file is a :class:`ConfigError`
    naming the path (``missing`` says what a missing file means to the reader)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None
