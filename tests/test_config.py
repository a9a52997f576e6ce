"""JsonConfig round trips and atomic writes: the contract every stage's config relies on."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.fileio import atomic_path, atomic_write_text


@dataclasses.dataclass(frozen=True)
class InnerConfig(JsonConfig):
    rate: float = 0.5
    taps: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class OuterConfig(JsonConfig):
    name: str = "x"
    inner: InnerConfig = InnerConfig()
    widths: tuple[int, ...] = (8, 4, 2)
    path: str | None = None


@pytest.mark.parametrize(
    "config",
    [
        OuterConfig(),
        OuterConfig(name="y", inner=InnerConfig(rate=0.25, taps=(3,)), widths=(8,), path="/a/b"),
    ],
)
def test_round_trip_through_json_file(tmp_path, config):
    path = config.save(tmp_path / "sub" / "config.json")
    assert OuterConfig.load(path) == config
    assert json.loads(path.read_text())["inner"]["taps"] == list(config.inner.taps)


def test_unknown_keys_are_an_error():
    with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
        OuterConfig.from_dict({"name": "x", "bogus": 1})


def test_missing_and_invalid_files_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        OuterConfig.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        OuterConfig.load(bad)


def test_missing_keys_take_defaults():
    assert OuterConfig.from_dict({"name": "z"}) == OuterConfig(name="z")


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_atomic_writes_get_the_ordinary_file_mode(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "file.txt", "x")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644
