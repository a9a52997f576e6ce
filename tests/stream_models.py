"""Converted-model directories for the streaming tests, made the cheap way: flatbuffers of tiny
Keras models straight from LCE's converter, listed by the manifest `bifsmn-tf convert` writes."""

from __future__ import annotations

import json
from pathlib import Path

from bifsmn_tf.convert import MANIFEST
from bifsmn_tf.data.labels import LABELS_12
from bifsmn_tf.features import FeatureConfig


def write_converted(directory: Path, flatbuffers: dict[int, bytes]) -> Path:
    """``directory`` holding ``student_w{width}.tflite`` for each flatbuffer (features in, the
    12 classes out) and the manifest fields the spotter reads."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for width, flatbuffer in flatbuffers.items():
        (directory / f"student_w{width}.tflite").write_bytes(flatbuffer)
        entries.append({"file": f"student_w{width}.tflite", "kind": "student", "width": width})
    manifest = {
        "input": "features",
        "labels": list(LABELS_12),
        "feature_config": FeatureConfig().to_dict(),
        "models": entries,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return directory
