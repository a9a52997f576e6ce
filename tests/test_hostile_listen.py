"""Hostile input to ``bifsmn-tf listen`` (and ``bench`` on the same damaged flatbuffers): float
flags out of range, flatbuffers cut short, manifests damaged by hand, and WAV files that are not
what they say; beside them the inputs that are fine, with what they must give.

The "keyword" model has set weights instead of training, so that detection times are known
exactly and cost nothing: it says "yes" when the loudest frames of the window are loud (a burst
of noise) and "silence" otherwise.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import larq_compute_engine as lce
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from hostile import Case, check_case, ids
from stream_models import write_converted
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.data.audio import write_wav
from bifsmn_tf.data.labels import LABELS_12, SILENCE
from bifsmn_tf.records import MANIFEST

RATE = 16000


def _loudness_flatbuffer() -> bytes:
    """Features in, 12 logits out: "yes" rises 0.5 per dB of the mean over the mel bands of each
    band's loudest frame above -20 dB; "silence" is 0, the other classes far below. Quiet noise
    (about -33 dB) is silence, a burst (about +3 dB) is "yes", the zeros before the stream
    (-100 dB) are silence."""
    features = tf.keras.Input((32, 32))
    dense = tf.keras.layers.Dense(12)
    model = tf.keras.Model(features, dense(tf.keras.layers.GlobalMaxPooling1D()(features)))
    kernel = np.zeros((32, 12), np.float32)
    bias = np.full(12, -20.0, np.float32)
    yes, silence = LABELS_12.index("yes"), LABELS_12.index(SILENCE)
    kernel[:, yes], bias[yes], bias[silence] = 0.5 / 32, 0.5 * 20.0, 0.0
    dense.set_weights([kernel, bias])
    return lce.convert_keras_model(model)


def _audio(seconds: float, bursts: tuple[tuple[float, float], ...] = (), rate: int = RATE):
    """Quiet noise with loud bursts of noise at ``(start_s, end_s)``."""
    rng = np.random.default_rng(0)
    samples = 0.003 * rng.normal(size=round(seconds * rate))
    for start, end in bursts:
        span = slice(round(start * rate), round(end * rate))
        samples[span] += 0.3 * rng.normal(size=span.stop - span.start)
    return samples.astype(np.float32)


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    """The loudness model at widths 8 and 2, and WAV files good and bad, by name."""
    base = tmp_path_factory.mktemp("hostile-listen")
    flatbuffer = _loudness_flatbuffer()
    models = write_converted(base / "models", {8: flatbuffer, 2: flatbuffer})
    for name, samples in {
        "quiet.wav": _audio(1.0),
        "burst_at_0.wav": _audio(2.0, ((0.0, 0.05),)),
        "short.wav": _audio(0.3, ((0.1, 0.15),)),
        "ten_samples.wav": _audio(10 / RATE),
        "header_only.wav": _audio(0.0),
    }.items():
        write_wav(base / name, samples)
    for rate in (44100, 8000):
        write_wav(base / f"burst_at_1_{rate}.wav", _audio(2.0, ((1.0, 1.1),), rate), rate)
    stereo = np.stack([_audio(1.5, ((0.5, 0.6),)), _audio(1.5)], axis=1)
    sf.write(str(base / "stereo.wav"), stereo, RATE)
    for name, bad in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        samples = _audio(1.0)
        samples[100] = bad
        sf.write(str(base / name), samples, RATE, subtype="FLOAT", format="WAV")
    whole = (base / "quiet.wav").read_bytes()
    (base / "cut.wav").write_bytes(whole[: len(whole) // 2])
    (base / "empty.wav").write_bytes(b"")
    (base / "text.wav").write_text("yes no up down\n")
    (base / "folder.wav").mkdir()
    return {
        **{path.name: path for path in base.glob("*.wav")},
        "missing.wav": base / "missing.wav",
        "models": models,
        "student": models / "student_w8.tflite",
    }


# --- argv builders --------------------------------------------------------------------------------


def listen(*flags: str, wav: str = "quiet.wav") -> Callable[[dict, Path], list]:
    """``listen`` on the prepared models and WAV file."""
    return lambda paths, tmp: ["listen", paths["models"], "--wav", paths[wav], *flags]


def _copy_models(paths: dict, tmp: Path) -> Path:
    return Path(shutil.copytree(paths["models"], tmp / "models"))


def _edited_models(paths: dict, tmp: Path, edit: Callable[[dict], Any]) -> Path:
    """A copy of the models whose manifest.json holds ``edit(manifest)`` (a str is the file's
    new text, anything else is written as JSON)."""
    models = _copy_models(paths, tmp)
    manifest = models / MANIFEST
    new = edit(json.loads(manifest.read_text()))
    manifest.write_text(new if isinstance(new, str) else json.dumps(new))
    return models


def edited_manifest(edit: Callable[[dict], Any]) -> Callable[[dict, Path], list]:
    """``listen`` on a copy of the models with an edited manifest (:func:`_edited_models`)."""
    return lambda paths, tmp: ["listen", _edited_models(paths, tmp, edit), "--wav", paths["quiet.wav"], "--width", "8"]


def students(**changes: Any) -> Callable[[dict], dict]:
    """A manifest edit: ``changes`` in every student entry."""
    return lambda m: {**m, "models": [{**e, **changes} for e in m["models"]]}


def features(**values: Any) -> Callable[[dict], dict]:
    """A manifest edit: ``values`` as the whole feature_config."""
    return lambda m: {**m, "feature_config": values}


def without(key: str) -> Callable[[dict], dict]:
    return lambda m: {k: v for k, v in m.items() if k != key}


def damaged_student(damage: Callable[[Path], Any], verb: str = "listen") -> Callable:
    """``listen`` (or ``bench``) on a copy of the models whose student_w8.tflite ``damage`` hit."""

    def argv(paths: dict, tmp: Path) -> list:
        models = _copy_models(paths, tmp)
        damage(models / "student_w8.tflite")
        if verb == "bench":
            return ["bench", models / "student_w8.tflite", "--runs", "1", "--warmup-runs", "0"]
        return ["listen", models, "--wav", paths["quiet.wav"]]

    return argv


def _cut(fraction: float) -> Callable[[Path], Any]:
    return lambda p: p.write_bytes(p.read_bytes()[: int(p.stat().st_size * fraction)])


def _into_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _unknown_op(path: Path) -> None:
    """A whole, valid flatbuffer whose every op is a custom op no interpreter knows."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    for code in model.operatorCodes:
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = b"NoSuchOp"
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


# --- the table ------------------------------------------------------------------------------------

FIX = r"bifsmn-tf convert"
W8 = r"student_w8\.tflite: "
INT = "an integer or null"
LABELS = r"('labels' must (be a list of strings|list the classes)|'labels\[0\]' must be a string)"

FLAG_CASES = [
    *(
        Case(f"hop-ms-{value}", listen(f"--hop-ms={value}"), expect=(r"--hop-ms", r"finite|> 0"))
        for value in ("nan", "inf", "-inf", "-100", "0")
    ),
    Case(
        "hop-ms-longer-than-the-window",
        listen("--hop-ms", "1500"),
        expect=(r"--hop-ms .* to the window \(1000 ms\), got 1500",),
    ),
    Case("hop-ms-under-one-sample", listen("--hop-ms", "0.02"), expect=(r"--hop-ms .* one sample \(0\.0625 ms\)",)),
    *(
        Case(
            f"smoothing-ms-{value}",
            listen(f"--smoothing-ms={value}"),
            expect=(r"--smoothing-ms", r"finite|from 0 \(one hop\) to 10000 ms"),
        )
        for value in ("nan", "inf", "-1", "60000")
    ),
    *(
        Case(
            f"refractory-ms-{value}", listen(f"--refractory-ms={value}"), expect=(r"--refractory-ms", r"finite|>= 0 ms")
        )
        for value in ("nan", "inf", "-1")
    ),
    *(
        Case(
            f"latency-budget-ms-{value}",
            listen(f"--latency-budget-ms={value}"),
            expect=(r"--latency-budget-ms", r"finite|> 0"),
        )
        for value in ("nan", "inf", "0", "-5")
    ),
    *(
        Case(f"threshold-{value}", listen(f"--threshold={value}"), expect=(r"--threshold", r"finite|in \(0, 1\]"))
        for value in ("nan", "inf", "-inf", "0", "-0.5", "1.5")
    ),
    *(
        Case(f"width-{name}", listen(f"--width={value}"), expect=(r"--width must be",))
        for name, value in (("word", "wide"), ("negative", "-2"), ("empty", ""), ("float", "8.0"))
    ),
    Case("width-superscript-digit", listen("--width", "²"), expect=(r"--width must be",)),
    Case("width-0", listen("--width", "0"), expect=(r"--width .*positive integer.*got 0",)),
    Case("width-not-converted", listen("--width", "4"), expect=(r"width 4 was not converted; available: \[8, 2\]",)),
    # Beside them, the edges of every range, which are fine.
    Case(
        "boundaries-are-accepted",
        listen("--hop-ms", "1000", "--threshold", "1", "--smoothing-ms", "0", "--refractory-ms", "0", "--width", "08"),
        code=0,
        expect=(r"0 detection\(s\); width 8: 1 hops",),
    ),
    Case(
        "auto-width-within-a-budget",
        listen("--hop-ms", "50", "--latency-budget-ms", "1e6"),
        code=0,
        expect=(r"budget 1e\+06 ms per hop", r"starting at width 8", r"width 8: 39 hops"),
    ),
]

DAMAGES = (
    ("cut-in-half", _cut(0.5), r"damaged TFLite flatbuffer \(cut short\?\)"),
    ("without-its-last-bytes", _cut(0.999), r"damaged TFLite flatbuffer"),
    ("of-0-bytes", _cut(0.0), r"not a TFLite flatbuffer \(0 bytes"),
    ("of-text", lambda p: p.write_text("a model, honest\n"), r"not a TFLite flatbuffer"),
    ("with-an-unknown-op", _unknown_op, r"LCE's interpreter cannot run it"),
)

FLATBUFFER_CASES = [
    *(
        Case(f"{verb}-student-{name}", damaged_student(damage, verb), expect=(W8 + problem, FIX))
        for verb in ("listen", "bench")
        for name, damage, problem in DAMAGES
    ),
    Case(
        "listen-student-a-folder",
        damaged_student(_into_folder),
        expect=(W8 + r"cannot read it \(Is a directory\)", FIX),
    ),
    Case(
        "bench-a-manifest-cut-short",
        lambda paths, tmp: ["bench", _edited_models(paths, tmp, lambda m: json.dumps(m)[:30])],
        expect=(r"manifest\.json: not valid JSON", r"convert again, or name the \.tflite files"),
    ),
    Case(
        "bench-a-whole-flatbuffer",
        lambda paths, tmp: ["bench", paths["student"], "--runs", "2", "--warmup-runs", "0"],
        code=0,
        expect=(r"student_w8\.tflite",),
    ),
    Case(
        "listen-student-of-other-inputs",
        edited_manifest(lambda m: {**m, "input": "audio"}),
        expect=(r"student_w8\.tflite takes \(32, 32\) .* manifest says audio \(16000,\)", FIX),
    ),
    Case(
        "listen-student-of-other-classes",
        edited_manifest(lambda m: {**m, "labels": ["silence", "yes", "no"]}),
        expect=(r"gives 12 classes; .* 3 labels", FIX),
    ),
    # Only the width asked for is read: a damaged other width does not stop it.
    Case(
        "listen-a-whole-width-beside-a-damaged-one",
        lambda paths, tmp: [*damaged_student(_cut(0.5))(paths, tmp), "--width", "2"],
        code=0,
        expect=(r"0 detection\(s\); width 2: 19 hops",),
    ),
]

MANIFEST_CASES = [
    *(
        Case(f"manifest-{name}", edited_manifest(edit), expect=(r"manifest\.json: " + problem, FIX))
        for name, edit, problem in (
            ("cut-short", lambda m: json.dumps(m)[:40], r"not valid JSON"),
            ("empty", lambda m: "", r"not valid JSON"),
            ("a-list", lambda m: [m], r"expected a JSON object, got list"),
            ("null", lambda m: None, r"expected a JSON object, got NoneType"),
            *(
                (f"without-{key}", without(key), f"no '{key}'")
                for key in ("models", "labels", "input", "feature_config")
            ),
            (
                "models-an-object",
                lambda m: {**m, "models": {"8": "student_w8.tflite"}},
                r"'models' must be a list of objects",
            ),
            (
                "models-of-file-names",
                lambda m: {**m, "models": ["student_w8.tflite"]},
                r"'models\[0\]' must be an object",
            ),
            ("file-a-number", students(file=8), r"'models\[0\]\.file' must be a string, got 8"),
            *(
                (f"width-{name}", students(width=width), f"'models\\[0\\]\\.width' must be {INT}, got {got}")
                for name, width, got in (("a-string", "8", "'8'"), ("a-float", 8.5, r"8\.5"), ("true", True, "True"))
            ),
            (
                "width-missing",
                students(width=None),
                f"models\\[0\\]: {W8}'width' must be a positive integer for a student, got None",
            ),
            ("no-students", students(kind="teacher_fp32", width=None), r"no student flatbuffers listed"),
            ("file-missing", students(file="gone.tflite"), r"lists files that are missing"),
            ("labels-a-string", lambda m: {**m, "labels": "yes,no"}, LABELS),
            ("labels-empty", lambda m: {**m, "labels": []}, LABELS),
            ("labels-of-numbers", lambda m: {**m, "labels": list(range(12))}, LABELS),
            ("input-unknown", lambda m: {**m, "input": "wav"}, r"'input' must be one of"),
            (
                "feature-config-a-list",
                lambda m: {**m, "feature_config": [1]},
                r"'feature_config' must be an object, got \[1\]",
            ),
            (
                "feature-config-unknown-key",
                features(n_mel=32),
                r"'feature_config': FeatureConfig: unknown keys \['n_mel'\]",
            ),
            (
                "feature-config-a-string-rate",
                features(sample_rate="16k"),
                r"'feature_config': FeatureConfig: sample_rate must be a positive integer",
            ),
            ("feature-config-a-string-frequency", features(f_min="0"), r"'feature_config': .*not supported"),
        )
    ),
    Case(
        "manifest-a-flatbuffer",
        lambda paths, tmp: ["listen", paths["student"], "--wav", paths["quiet.wav"]],
        expect=(W8 + "not valid JSON", FIX),
    ),
    Case(
        "manifest-nowhere",
        lambda paths, tmp: ["listen", tmp, "--wav", paths["quiet.wav"]],
        expect=(r"manifest\.json not found: run `bifsmn-tf convert RUN_DIR` first",),
    ),
    # What `bifsmn-tf convert` writes beyond what the spotter reads is no error, and the manifest
    # can be named instead of its directory.
    Case(
        "manifest-with-more-fields-named-directly",
        lambda paths, tmp: [
            "listen",
            _edited_models(paths, tmp, lambda m: {**m, "storage": {}}) / MANIFEST,
            "--wav",
            paths["quiet.wav"],
            "--width",
            "2",
        ],
        code=0,
        expect=(r"0 detection\(s\); width 2: 19 hops",),
    ),
]

WAV_CASES = [
    *(
        Case(f"wav-{name}", listen("--width", "8", wav=wav), expect=(re_name + ": " + problem,))
        for name, wav, re_name, problem in (
            ("empty", "empty.wav", r"empty\.wav", r"empty file \(0 bytes\)"),
            ("cut-short", "cut.wav", r"cut\.wav", r"truncated WAV"),
            ("of-text", "text.wav", r"text\.wav", r"not a RIFF/WAVE file"),
            ("a-folder", "folder.wav", r"folder\.wav", r"is a directory"),
            ("missing", "missing.wav", r"missing\.wav", r"file not found"),
            ("without-samples", "header_only.wav", r"header_only\.wav", r"WAV holds no audio"),
            ("with-nan", "nan.wav", r"nan\.wav", r"float WAV contains NaN or infinite samples"),
            ("with-inf", "inf.wav", r"inf\.wav", r"float WAV contains NaN or infinite samples"),
        )
    ),
    # A keyword at the very start: its windows begin before the audio, its time must not.
    Case(
        "burst-at-0-s-is-not-before-the-audio",
        listen("--width", "8", wav="burst_at_0.wav"),
        code=0,
        expect=(r"(?m)^ +0\.0\d s  yes ", r"1 detection\(s\)"),
    ),
    # Shorter than the window: the silence around it fills the window, and it is heard.
    Case(
        "shorter-than-the-window",
        listen("--width", "8", wav="short.wav"),
        code=0,
        expect=(r"(?m)^ +0\.(0[5-9]|1\d|20) s  yes ", r"1 detection\(s\); width 8: 12 hops"),
    ),
    Case(
        "ten-samples",
        listen("--width", "8", wav="ten_samples.wav"),
        code=0,
        expect=(r"0 detection\(s\); width 8: 9 hops",),
    ),
    # Other rates are resampled: the burst at 1.0-1.1 s stays there.
    *(
        Case(
            f"resampled-from-{rate}-hz",
            listen("--width", "8", wav=f"burst_at_1_{rate}.wav"),
            code=0,
            expect=(r"(?m)^ +1\.[01]\d s  yes ", r"1 detection\(s\); width 8: 29 hops"),
        )
        for rate in (44100, 8000)
    ),
    Case(
        "stereo-is-averaged",
        listen("--width", "8", wav="stereo.wav"),
        code=0,
        expect=(r"(?m)^ +0\.[56]\d s  yes ", r"1 detection\(s\); width 8: 24 hops"),
    ),
]

CASES = FLAG_CASES + FLATBUFFER_CASES + MANIFEST_CASES + WAV_CASES


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_listen(case, paths, tmp_path):
    check_case(case, paths, tmp_path)
