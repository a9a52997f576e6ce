"""Converted-model directories for the tests of the run-time side (``listen``, ``bench``, the Pi
runner), made the cheap way: flatbuffers of tiny Keras models straight from LCE's converter,
listed by a manifest of `bifsmn-tf convert`'s schema (:class:`bifsmn_tf.records.ConversionManifest`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bifsmn_tf.convert import flatbuffer_entry
from bifsmn_tf.data.labels import LABELS_12
from bifsmn_tf.features import FeatureConfig
from bifsmn_tf.records import KIND_STUDENT, MANIFEST, ConversionManifest, FlatbufferEntry


def manifest_entry(directory: Path, file: str, kind: str = KIND_STUDENT, width: int | None = None) -> FlatbufferEntry:
    """The manifest entry of ``directory/file``. Its ``verification`` is empty: these flatbuffers
    are not checked against Keras."""
    flatbuffer = (directory / file).read_bytes()
    return flatbuffer_entry(file, kind, width, flatbuffer, names_stripped=False, verification={})


def write_manifest(directory: Path, entries: Sequence[FlatbufferEntry]) -> Path:
    """``directory/manifest.json`` listing ``entries`` (features of the official frontend in, the
    12 classes out); the figures of a conversion they did not go through are left empty."""
    manifest = ConversionManifest(
        input="features",
        input_shape=entries[0].input_shape,
        labels=LABELS_12,
        widths=tuple(e.width for e in entries if e.kind == KIND_STUDENT),
        feature_config=FeatureConfig().to_dict(),
        convert_config={},
        versions={},
        storage={},
        models=tuple(entries),
    )
    return manifest.save(directory / MANIFEST)


def write_converted(directory: Path, flatbuffers: dict[int, bytes]) -> Path:
    """``directory`` holding ``student_w{width}.tflite`` for each flatbuffer (features in, the
    12 classes out) under their manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    for width, flatbuffer in flatbuffers.items():
        (directory / f"student_w{width}.tflite").write_bytes(flatbuffer)
    write_manifest(directory, [manifest_entry(directory, f"student_w{w}.tflite", width=w) for w in flatbuffers])
    return directory
