"""The synthetic keyword set: layout, split by voice, synth.json, determinism, resume, bad input."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SMALL_SYNTH

from bifsmn_tf.cli import main as cli_main
from bifsmn_tf.data import speech_commands, tts
from bifsmn_tf.data.labels import KEYWORDS, LABELS_12, SILENCE, UNKNOWN, WORDS_V1, WORDS_V2
from bifsmn_tf.data.pipeline import DataConfig, unseen_word_waveforms
from bifsmn_tf.data.speech_commands import (
    BACKGROUND_NOISE_DIR,
    NOHASH,
    TESTING_LIST,
    UNSEEN_WORDS_DIR,
    VALIDATION_LIST,
    clip_path,
    speaker_of,
)
from bifsmn_tf.data.synthetic import (
    GENERATOR_VERSION,
    NOISE_KINDS,
    PARTIAL_DIR,
    SYNTH_JSON,
    Perturbations,
    SynthConfig,
    SynthError,
    coloured_noise,
    generate,
    microphone_response,
    plan_speakers,
    room_impulse_response,
    speak,
)
from bifsmn_tf.data.synthetic.plan import speaker_takes
from bifsmn_tf.data.synthetic.vocabulary import TRAINING_NEGATIVES, UNSEEN_WORDS
from bifsmn_tf.features import FeatureConfig

DEFAULT_ENGINES = ("espeak", "pico")
#: `bifsmn-tf data synth` in a child process.
SYNTH_CLI = [sys.executable, "-m", "bifsmn_tf.cli", "data", "synth"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def children(pid: int) -> list[int]:
    """Child process ids (Linux /proc; empty elsewhere)."""
    return [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()]


def manifest(root: Path) -> dict:
    return json.loads((root / SYNTH_JSON).read_text())


# --- the set on disk ---------------------------------------------------------------------------


def test_layout_is_speech_commands(synth_dataset: Path):
    assert sorted(p.name for p in synth_dataset.iterdir() if p.is_dir()) == sorted((*WORDS_V1, BACKGROUND_NOISE_DIR))
    assert not (synth_dataset / PARTIAL_DIR).exists()
    for word in WORDS_V1:
        clips = sorted((synth_dataset / word).iterdir())
        assert len(clips) == SMALL_SYNTH.clips_per_word
        for clip in clips:
            assert clip.name.endswith("_nohash_0.wav")
            info = sf.info(str(clip))
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    noise = sorted(p.stem for p in (synth_dataset / BACKGROUND_NOISE_DIR).iterdir())
    assert noise == sorted(NOISE_KINDS)
    for path in (synth_dataset / BACKGROUND_NOISE_DIR).iterdir():
        assert sf.info(str(path)).frames == int(SMALL_SYNTH.background_seconds * 16000)
    # The Speech Commands loader reads it: lists name existing files, the splits partition the clips.
    assert speech_commands.check_layout(synth_dataset) == len(WORDS_V1) * SMALL_SYNTH.clips_per_word
    splits = {s: speech_commands.split_files(synth_dataset, s) for s in ("train", "validation", "test")}
    assert sum(map(len, splits.values())) == len(WORDS_V1) * SMALL_SYNTH.clips_per_word
    assert all(len(files) > 0 for files in splits.values())
    assert not set(splits["validation"]) & set(splits["test"])


@pytest.mark.parametrize("protocol", speech_commands.PROTOCOLS)
@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_the_loader_labels_every_split(synth_dataset: Path, protocol: str, split: str):
    examples = speech_commands.examples(synth_dataset, "v1-12", split, protocol)
    labels = {e.label for e in examples}
    assert {LABELS_12.index(k) for k in KEYWORDS} <= labels
    assert {LABELS_12.index(UNKNOWN), LABELS_12.index(SILENCE)} <= labels


def test_clips_hold_speech_not_silence(synth_dataset: Path):
    for path in sorted(synth_dataset.glob(f"*/*{NOHASH}0.wav"))[:20]:
        samples, _ = sf.read(str(path), dtype="float32")
        frames = samples.reshape(50, 320)
        energy = np.sqrt(np.mean(frames**2, axis=1))
        # A spoken word: loud frames well above the quietest (the noise floor, or the noise).
        assert energy.max() > 4 * np.percentile(energy, 10), path


def test_no_test_or_validation_speaker_is_trained_on(synth_dataset: Path):
    speakers = {
        split: {speaker_of(f) for f in speech_commands.split_files(synth_dataset, split)}
        for split in ("train", "validation", "test")
    }
    assert all(speakers.values())
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]


def test_synth_json_records_every_clip(synth_dataset: Path):
    made = manifest(synth_dataset)
    assert made["complete"] is True
    assert made["generator_version"] == GENERATOR_VERSION
    assert SynthConfig.from_dict(made["config"]) == SMALL_SYNTH
    for engine in DEFAULT_ENGINES:
        assert made["engines"][engine]["packages"] == {
            d: importlib.metadata.version(d) for d in tts.ENGINES[engine].distributions
        }
    wavs = {str(p.relative_to(synth_dataset)) for p in synth_dataset.glob(f"*/*{NOHASH}0.wav")}
    assert set(made["clips"]) == wavs
    testing = set((synth_dataset / TESTING_LIST).read_text().split())
    validation = set((synth_dataset / VALIDATION_LIST).read_text().split())
    for path, record in made["clips"].items():
        word = path.split("/")[0]
        speaker = made["speakers"][speaker_of(path)]
        assert record["text"].rstrip(".?!") == word
        assert (record["engine"], record["voice"], record["split"]) == (
            speaker["engine"],
            speaker["voice"],
            speaker["split"],
        )
        assert record["voice"] in tts.load_engine(record["engine"]).voices()
        assert record["split"] == ("testing" if path in testing else "validation" if path in validation else "training")
        assert record["room"] == speaker["room"] and record["microphone"] == speaker["microphone"]
        assert 0 < record["speech_seconds"] <= 0.9
        assert 0 <= record["onset_seconds"] <= 1 - record["speech_seconds"]
        assert record["noise_floor"]["kind"] in NOISE_KINDS
        if record["noise"] is not None:
            assert record["noise"]["kind"] in NOISE_KINDS and 5 <= record["noise"]["snr_db"] <= 35
        assert {"rate", "pitch", "vocal_tract", "intonation", "breath", "clipping", "level_dbfs"} <= set(record)
    assert made["counts"] == {
        "clips": len(wavs),
        "speakers": SMALL_SYNTH.clips_per_word,
        "testing": len(testing),
        "validation": len(validation),
        "training": len(wavs) - len(testing) - len(validation),
        "rejected": 0,
        "unseen_words": 0,
    }
    assert made["rejected"] == {}


def test_check_words_keeps_only_heard_takes_and_lists_the_rest(tmp_path: Path, synth_dataset: Path):
    pytest.importorskip("pocketsphinx")
    config = SMALL_SYNTH.replace(check_words=True)
    result = generate(tmp_path / "checked", config, jobs=1, progress=False)
    made = manifest(result.root)
    clips, rejected = made["clips"], made["rejected"]
    assert result.counts["rejected"] == len(rejected) > 0 and result.counts["clips"] == len(clips) > 0
    every_take = {clip_path(w, s) for w in WORDS_V1 for s in made["speakers"]}
    assert set(clips) | set(rejected) == every_take and not set(clips) & set(rejected)
    checked, plain = tree_bytes(result.root), tree_bytes(synth_dataset)
    for path, record in clips.items():
        word = path.split("/")[0]
        assert 1 <= len(record["check"]) <= 3 and record["check"][-1] == word
        assert word not in record["check"][:-1]
        # A take heard at once is the clip made without the check; a retake is another take.
        assert (checked[path] == plain[path]) == (len(record["check"]) == 1)
    for path, record in rejected.items():
        assert len(record["check"]) == 3 and path.split("/")[0] not in record["check"]
        assert path not in checked and record["split"] == made["speakers"][speaker_of(path)]["split"]
    listed = (result.root / TESTING_LIST).read_text().split()
    assert set(listed) == {p for p, r in clips.items() if r["split"] == "testing"}
    assert {e.path for e in speech_commands.examples(result.root, "v1-12", "train", "bifsmn") if e.path} == {
        p for p, r in clips.items() if r["split"] == "training"
    }


def test_negatives_are_training_words_and_unseen_words_stay_out_of_every_split(tmp_path: Path, synth_dataset: Path):
    config = SMALL_SYNTH.replace(negatives_per_speaker=2, unseen_words_per_speaker=2)
    result = generate(tmp_path / "negatives", config, jobs=1, progress=False)
    made = manifest(result.root)
    speakers = made["speakers"]
    extra = {p: r for p, r in made["clips"].items() if p.split("/")[0] not in WORDS_V1}
    by_speaker: dict[str, list[str]] = {}
    for path in extra:
        by_speaker.setdefault(speaker_of(path), []).append(path)
    # Two words each: training speakers from TRAINING_NEGATIVES, test speakers unseen words.
    for speaker, record in speakers.items():
        paths = sorted(by_speaker.get(speaker, []))
        if record["split"] == "training":
            assert len(paths) == 2 and all(p.split("/")[0] in TRAINING_NEGATIVES for p in paths)
        elif record["split"] == "testing":
            assert len(paths) == 2
            assert all(p.startswith(f"{UNSEEN_WORDS_DIR}/") and p.split("/")[1] in UNSEEN_WORDS for p in paths)
        else:
            assert paths == []
    assert result.counts["unseen_words"] == sum(p.startswith(UNSEEN_WORDS_DIR) for p in extra) > 0
    assert result.counts["clips"] == len(WORDS_V1) * config.clips_per_word + len(extra)
    # The set's own words are the clips made without negatives (espeak-ng: byte for byte).
    plain, with_extra = tree_bytes(synth_dataset), tree_bytes(result.root)
    for path, data in plain.items():
        if path.endswith(".wav") and speaker_of(path).startswith("espeak"):
            assert with_extra[path] == data, path
    # Negatives are training clips of `unknown`; the unseen words are in no split and no list.
    listed = (result.root / TESTING_LIST).read_text().split() + (result.root / VALIDATION_LIST).read_text().split()
    assert not any(p.startswith(UNSEEN_WORDS_DIR) for p in listed)
    assert speech_commands.split_files(result.root, "test") == speech_commands.split_files(synth_dataset, "test")
    train = speech_commands.examples(result.root, "v1-12", "train", "bifsmn")
    negatives = [e for e in train if e.path and e.path.split("/")[0] in TRAINING_NEGATIVES]
    assert len(negatives) == sum(r["split"] == "training" for r in speakers.values()) * 2
    assert {e.label for e in negatives} == {LABELS_12.index(UNKNOWN)}
    data = DataConfig(root=str(result.root))
    waveforms, words = unseen_word_waveforms(data, FeatureConfig())
    assert waveforms.shape == (result.counts["unseen_words"], 16000) and set(words) <= set(UNSEEN_WORDS)
    assert np.abs(waveforms).max() > 0.01
    assert unseen_word_waveforms(DataConfig(root=str(synth_dataset)), FeatureConfig())[0].shape == (0, 16000)
    # A 35-class task has no `unknown` for the negatives: the loader refuses the set by folder.
    with pytest.raises(speech_commands.DatasetError, match="is not one of the 35 words"):
        speech_commands.examples(result.root, "v2-35", "train")


def test_unseen_words_alone_leave_the_training_split_as_it_was():
    config = SMALL_SYNTH.replace(clips_per_word=3, unseen_words_per_speaker=3)
    voices = {name: tts.load_engine(name).voices() for name in DEFAULT_ENGINES}
    speakers = plan_speakers(config, voices, dict.fromkeys(DEFAULT_ENGINES, 1.0))
    for speaker in speakers:
        takes = speaker_takes(config, speaker)
        assert takes[: len(WORDS_V1)] == [(w, clip_path(w, speaker.id)) for w in WORDS_V1]
        extra = takes[len(WORDS_V1) :]
        assert len(extra) == (3 if speaker.split == "testing" else 0)
        assert all(path.startswith(f"{UNSEEN_WORDS_DIR}/{word}/") for word, path in extra)
        assert speaker_takes(config, speaker) == takes  # drawn for the speaker alone


def test_vocabularies_hold_no_speech_commands_word_and_no_homophone_of_a_keyword():
    assert not set(TRAINING_NEGATIVES) & set(UNSEEN_WORDS)
    assert not (set(TRAINING_NEGATIVES) | set(UNSEEN_WORDS)) & set(WORDS_V2)
    # Audio of these is the keyword's: labelled `unknown`, they would teach a contradiction.
    homophones = {"know", "knoe", "write", "rite", "wright", "yess", "upp", "gough"}
    assert not (set(TRAINING_NEGATIVES) | set(UNSEEN_WORDS)) & homophones
    assert list(TRAINING_NEGATIVES) == sorted(set(TRAINING_NEGATIVES))
    assert all(w.isalpha() and w.islower() for w in (*TRAINING_NEGATIVES, *UNSEEN_WORDS))


def test_check_words_without_pocketsphinx_is_refused_by_name(tmp_path: Path):
    """A real CLI run whose workers cannot import pocketsphinx (a shadowing package raises
    ImportError, as a missing one does): exit 2, the extra named, nothing written."""
    shadow = tmp_path / "shadow" / "pocketsphinx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no pocketsphinx here')\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path])}
    run = subprocess.run(
        [*SYNTH_CLI, "--out", str(out), "--clips-per-word", "3", "--engines", "pico", "--check-words", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert "pocketsphinx is not installed (pip install 'bifsmn-tf[check]')" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists()


def test_a_set_made_before_a_setting_existed_reads_as_its_default(tmp_path: Path, synth_dataset: Path):
    copy = tmp_path / "older"
    shutil.copytree(synth_dataset, copy)
    made = manifest(copy)
    del made["config"]["check_words"]
    (copy / SYNTH_JSON).write_text(json.dumps(made))
    assert generate(copy, SMALL_SYNTH, jobs=1, progress=False).status == "already complete"
    refused(copy, SMALL_SYNTH.replace(check_words=True), "differs in check_words")


def test_v2_words_for_both_v2_tasks(tmp_path: Path):
    config = SMALL_SYNTH.replace(words="v2", clips_per_word=3)
    result = generate(tmp_path / "v2", config, jobs=1, progress=False)
    folders = sorted(p.name for p in result.root.iterdir() if p.is_dir() and p.name != BACKGROUND_NOISE_DIR)
    assert folders == sorted(WORDS_V2)
    assert result.counts["clips"] == 3 * len(WORDS_V2)
    train_35 = speech_commands.examples(result.root, "v2-35", "train")
    assert sorted({e.label for e in train_35}) == list(range(35))
    test_12 = speech_commands.examples(result.root, "v2-12", "test", "standard")
    assert {LABELS_12.index(k) for k in KEYWORDS} <= {e.label for e in test_12}


# --- determinism and interruption ----------------------------------------------------------------


#: Pico (py-nanotts 0.1.1) reads uninitialised memory: before the workers' mmap-threshold fix
#: (f5d1819) a full test run gave other bytes for the same clip in workers with other histories.
#: Until that fix has held in full runs, the resume logic is checked byte for byte with espeak-ng
#: alone; Pico's own reproducibility is the xfail in test_tts.py.
RESUME_ENGINES = ("espeak",)


def test_a_killed_run_resumes_to_the_same_bytes_as_an_uninterrupted_one(tmp_path: Path):
    """Kill a real CLI process mid-run (jobs 1), rerun it; compare with a fresh run on 2 jobs."""
    out = tmp_path / "killed"
    command = [*SYNTH_CLI, "--out", str(out), "--clips-per-word", "6", "--jobs", "1"]
    command += ["--engines", *RESUME_ENGINES, "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = out / PARTIAL_DIR / "speakers.jsonl"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= 1):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    workers = children(process.pid)
    assert workers or not Path("/proc").is_dir()
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # the worker follows its parent
        assert time.monotonic() < deadline, f"worker processes {workers} outlived their killed parent"
        time.sleep(0.05)
    # Interrupted: nothing that looks like a finished set.
    assert not (out / SYNTH_JSON).exists() and not (out / TESTING_LIST).exists()
    with pytest.raises(speech_commands.DatasetError):
        speech_commands.check_layout(out)

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout

    fresh = generate(tmp_path / "fresh", SynthConfig(clips_per_word=6, engines=RESUME_ENGINES), jobs=2, progress=False)
    assert fresh.status == "created"
    assert tree_bytes(out) == tree_bytes(fresh.root)


def test_another_seed_gives_other_clips(tmp_path: Path, synth_dataset: Path):
    other = generate(tmp_path / "seed1", SMALL_SYNTH.replace(seed=1), jobs=1, progress=False)
    ours, theirs = tree_bytes(synth_dataset), tree_bytes(other.root)
    shared = set(ours) & set(theirs)
    assert shared and all(ours[p] != theirs[p] for p in shared if p.endswith(".wav"))


def test_an_interrupted_run_with_other_settings_is_discarded(tmp_path: Path):
    out = tmp_path / "out"
    stale = out / PARTIAL_DIR / clip_path("yes", "espeak-0000")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an older generator")
    (out / PARTIAL_DIR / "plan.json").write_text(json.dumps({"generator_version": 0}))
    config = SMALL_SYNTH.replace(clips_per_word=3, background_seconds=2.0)
    result = generate(out, config, jobs=1, progress=False)
    assert result.status == "created"
    assert SynthConfig.from_dict(manifest(out)["config"]) == config
    assert not (out / PARTIAL_DIR).exists()
    assert b"from an older generator" not in tree_bytes(out).values()


def test_a_complete_set_is_left_alone(synth_dataset: Path):
    before = {p: p.stat().st_mtime_ns for p in synth_dataset.rglob("*")}
    result = generate(synth_dataset, SMALL_SYNTH, jobs=1, progress=False)
    assert result.status == "already complete"
    assert {p: p.stat().st_mtime_ns for p in synth_dataset.rglob("*")} == before


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"words": "v3"}, "unknown word list 'v3'"),
        ({"clips_per_word": 2}, "at least 3"),
        ({"engines": ("espeak", "festival")}, "unknown speech engine(s) ['festival']"),
        ({"testing_percent": 95.0}, "sum to less than 100"),
        ({"negatives_per_speaker": -1}, "negatives_per_speaker must be in [0, 159], got -1"),
        ({"negatives_per_speaker": 160}, "negatives_per_speaker must be in [0, 159], got 160"),
        ({"unseen_words_per_speaker": 95}, "unseen_words_per_speaker must be in [0, 94], got 95"),
    ],
)
def test_bad_config_is_refused_by_name(changes: dict, message: str):
    with pytest.raises(SynthError) as err:
        SMALL_SYNTH.replace(**changes)
    assert message in str(err.value)


def refused(out: Path, config: SynthConfig, message: str) -> None:
    with pytest.raises(SynthError) as err:
        generate(out, config, jobs=1, progress=False)
    assert message in str(err.value) and str(out) in str(err.value)


def test_a_directory_holding_something_else_is_refused_untouched(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    refused(out, SMALL_SYNTH, "not empty (notes.txt)")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_file_or_an_unwritable_place_is_refused(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused(blocker, SMALL_SYNTH, "is a file; a directory is needed there")
    refused(blocker / "out", SMALL_SYNTH, "which is a file, not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_more_jobs_than_cores_start_one_worker_per_core(tmp_path: Path):
    def workers() -> set[int]:
        spawned = set()
        for pid in children(os.getpid()):
            with contextlib.suppress(FileNotFoundError):  # a worker that just ended
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    spawned.add(pid)
        return spawned

    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(workers())
            time.sleep(0.02)

    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core, whatever the machine
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        config = SMALL_SYNTH.replace(engines=("espeak",), clips_per_word=3, background_seconds=1.0)
        generate(tmp_path / "set", config, jobs=64, progress=False)
    finally:
        done.set()
        watcher.join()
        os.sched_setaffinity(0, cores)
    assert len(seen) == 1, f"{len(seen)} workers on one core"


def test_a_set_made_with_other_settings_is_refused_untouched(synth_dataset: Path):
    before = tree_bytes(synth_dataset)
    refused(synth_dataset, SMALL_SYNTH.replace(seed=3), "other settings")
    assert tree_bytes(synth_dataset) == before


def test_cli_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "x"
    assert cli_main(["data", "synth", "--out", str(out), "--clips-per-word", "1", "--no-progress"]) == 2
    assert "at least 3" in capsys.readouterr().err
    for flag, value in (("--engines", "festival"), ("--words", "v3")):
        with pytest.raises(SystemExit):
            cli_main(["data", "synth", "--out", str(out), flag, value])
        assert f"invalid choice: '{value}'" in capsys.readouterr().err
    assert not out.exists()


def test_missing_engine_packages_are_named(tmp_path: Path):
    missing = [n for n, e in tts.ENGINES.items() if e.missing_distributions()]
    if not missing:
        pytest.skip("every optional engine is installed here")
    engine = missing[0]
    refused(tmp_path / "out", SMALL_SYNTH.replace(engines=(engine,)), tts.ENGINES[engine].missing_distributions()[0])
    assert not (tmp_path / "out").exists()


# --- the pieces ------------------------------------------------------------------------------------


def test_plan_splits_voices_and_mixes_engines():
    config = SynthConfig(clips_per_word=200, engines=DEFAULT_ENGINES)
    voices = {name: tts.load_engine(name).voices() for name in DEFAULT_ENGINES}
    shares = dict.fromkeys(DEFAULT_ENGINES, 1.0)
    speakers = plan_speakers(config, voices, shares)
    assert plan_speakers(config, voices, shares) == speakers
    by_split = {s: [p for p in speakers if p.split == s] for s in ("training", "validation", "testing")}
    assert {s: len(v) for s, v in by_split.items()} == {"training": 160, "validation": 20, "testing": 20}
    assert len({p.id for p in speakers}) == 200
    for split_speakers in by_split.values():  # each split gets the same engine mix
        counts = [sum(p.engine == e for p in split_speakers) for e in DEFAULT_ENGINES]
        assert abs(counts[0] - counts[1]) <= 1
    # espeak has hundreds of voices: the held-out speakers' voices are never heard in training.
    training_voices = {p.voice for p in by_split["training"] if p.engine == "espeak"}
    for split in ("validation", "testing"):
        assert not training_voices & {p.voice for p in by_split[split] if p.engine == "espeak"}
    tracts = [p.vocal_tract for p in speakers]
    low, high = Perturbations().vocal_tract
    assert low <= min(tracts) < 0.95 and 1.05 < max(tracts) <= high


@pytest.mark.parametrize("colour, exponent", [("white", 0.0), ("pink", -1.0), ("brown", -2.0), ("blue", 1.0)])
def test_coloured_noise_has_its_spectral_slope(colour: str, exponent: float):
    noise = coloured_noise(2**16, exponent, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    band = (freqs > 0.01) & (freqs < 0.4)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(exponent, abs=0.1), colour
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("rt60", [0.2, 0.6])
def test_room_reverberation_decays_by_60_db_in_rt60(rt60: float):
    room = {"rt60_seconds": rt60, "direct_to_reverberant_db": 0.0, "predelay_ms": 0.0, "tail_lowpass_hz": 6000.0}
    response = room_impulse_response(room, np.random.default_rng(0))
    tail = response[1:]
    # Schroeder backward integration: the energy decay curve, fitted from -5 to -25 dB.
    decay = 10 * np.log10(np.cumsum(tail[::-1] ** 2)[::-1] / np.sum(tail**2))
    fit = (decay < -5) & (decay > -25)
    slope = np.polyfit(np.flatnonzero(fit) / 16000, decay[fit], 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.2)
    assert np.sum(tail**2) == pytest.approx(1.0, rel=1e-3)  # 0 dB direct-to-reverberant


def test_telephone_microphone_band_limits():
    from scipy.signal import sosfreqz

    telephone = {"highpass_hz": 300.0, "lowpass_hz": 3400.0, "peaks": [{"hz": 1000.0, "gain_db": 0.0, "q": 1.0}]}
    freqs, response = sosfreqz(microphone_response(telephone), worN=[100, 1000, 6000], fs=16000)
    gain_db = 20 * np.log10(np.abs(response))
    assert gain_db[1] == pytest.approx(0.0, abs=1.0)
    assert gain_db[0] < -15 and gain_db[2] < -30


def envelope_ratio(x: np.ndarray, y: np.ndarray) -> float:
    """How much higher in frequency ``y``'s spectral envelope lies than ``x``'s: the shift on a
    log-frequency axis that best aligns their long-term spectra (16 ms windows smear the
    harmonics, so the envelope, not the pitch, dominates)."""
    from scipy.signal import welch

    grid = np.geomspace(200, 6000, 400)
    spectra = []
    for samples in (x, y):
        freqs, power = welch(samples, fs=16000, nperseg=256)
        spectra.append(np.log(np.interp(grid, freqs, power) + 1e-12))
    step = np.log(grid[1] / grid[0])
    shifts = range(0, 100)
    scores = [np.corrcoef(spectra[0][: len(grid) - k], spectra[1][k:])[0, 1] for k in shifts]
    return float(np.exp(step * shifts[int(np.argmax(scores))]))


@pytest.mark.parametrize("engine_name, voice", [("pico", "en-US"), ("espeak", "en-us+m3")])
def test_vocal_tract_warp_moves_formants_not_duration(engine_name: str, voice: str):
    engine = tts.load_engine(engine_name)
    long_tract, long_record = speak(engine, "seven", voice, vocal_tract=0.88)
    short_tract, short_record = speak(engine, "seven", voice, vocal_tract=1.14)
    assert (long_record["vocal_tract"], short_record["vocal_tract"]) == pytest.approx((0.88, 1.14), abs=0.01)
    assert envelope_ratio(long_tract, short_tract) == pytest.approx(1.14 / 0.88, rel=0.1)
    assert len(short_tract) == pytest.approx(len(long_tract), rel=0.15)
