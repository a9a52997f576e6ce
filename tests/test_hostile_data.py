"""Hostile input to the data layer: damaged clips inside a dataset, archives and sources that
hold no dataset, full disks, and nonsense flags to ``data synth`` and ``data download``.

Damaged clips are tested on the loader itself (``pytest.raises``), plus two ``train-teacher``
rows to show the CLI gives the same error before any training. Full disks are real: a small tmpfs,
so those tests need root (the CI runs as root) and skip, saying why, where it cannot be mounted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hostile import Case, check_case, ids, run_cli
from speech_commands_tree import ArchiveServer, make_archive, make_tree

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.data import speech_commands
from bifsmn_tf.data.audio import AudioFormatError, read_wav, write_wav
from bifsmn_tf.data.pipeline import DataConfig, split_waveforms
from bifsmn_tf.features import FeatureConfig

FEATURES = FeatureConfig()


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch):
    """Decoded-audio caches of CLI rows go under the case's directory, not the user's cache."""
    monkeypatch.setenv(speech_commands.DATA_DIR_ENV, str(tmp_path / "bifsmn-data"))


@pytest.fixture(scope="module")
def paths(tmp_path_factory, synth_dataset):
    """Sources for the rows: the synthetic set, a real archive, things that hold no dataset,
    and a local server (``url``: its base URL) serving some of them."""
    base = tmp_path_factory.mktemp("hostile-data")
    tree = make_tree(base / "tree", "v1", clips_per_word=3, noise_seconds=2, noise_files=1)
    archive = make_archive(tree, base / "v1.tar.gz")
    photos = base / "photos"
    photos.mkdir()
    (photos / "cat.txt").write_text("a photo of a cat, in words\n")
    (photos / "holiday").mkdir()
    (photos / "holiday" / "beach.txt").write_text("sand\n")
    photos_archive = make_archive(photos, base / "photos.tar.gz")
    truncated = base / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    notes = base / "notes.txt"
    notes.write_text("not an archive\n")
    with ArchiveServer() as server:
        server.files = {"photos.tar.gz": photos_archive.read_bytes(), "v1.tar.gz": archive.read_bytes()}
        yield {
            "synth": synth_dataset,
            "archive": archive,
            "photos": photos,
            "photos.tar.gz": photos_archive,
            "cut.tar.gz": truncated,
            "notes.txt": notes,
            "url": server.url(""),
        }


def _url(paths: dict, name: str) -> str:
    return paths["url"] + name


# --- damaged clips in a dataset --------------------------------------------------------------------


def _resampled_to_8khz(clip: Path) -> None:
    write_wav(clip, read_wav(clip)[::2], 8000)


def _float_with(value: float):
    def damage(clip: Path) -> None:
        samples = read_wav(clip)
        samples[100] = value
        sf.write(clip, samples, 16000, subtype="FLOAT")

    return damage


def _replaced_by(make):
    def damage(clip: Path) -> None:
        clip.unlink()
        make(clip)

    return damage


#: (id, damage, what the error says is wrong)
BAD_CLIPS = [
    ("8-khz", _resampled_to_8khz, r"sample rate is 8000 Hz, expected 16000 Hz"),
    ("empty", lambda clip: clip.write_bytes(b""), r"empty file \(0 bytes\)"),
    ("truncated", lambda clip: clip.write_bytes(clip.read_bytes()[:1000]), r"truncated WAV"),
    ("text", lambda clip: clip.write_text("yes\n"), r"not a supported audio file"),
    ("nan", _float_with(np.nan), r"NaN or infinite samples"),
    ("inf", _float_with(-np.inf), r"NaN or infinite samples"),
    ("dangling-symlink", _replaced_by(lambda c: c.symlink_to(c.with_name("gone.wav"))),
     r"cannot read it \(No such file or directory\)"),
    ("symlink-loop", _replaced_by(lambda c: c.symlink_to(c)), r"cannot read it \(Too many levels"),
    ("fifo", _replaced_by(os.mkfifo), r"not a regular file"),
    ("directory", _replaced_by(Path.mkdir), r"not a regular file"),
]  # fmt: skip


def damaged_copy(paths: dict[str, Path], tmp: Path, damage) -> tuple[Path, Path]:
    """A copy of the synthetic set with one training clip damaged: ``(root, clip)``."""
    root = shutil.copytree(paths["synth"], tmp / "set", symlinks=True)
    clip = root / speech_commands.split_files(root, "train")[5]
    damage(clip)
    return root, clip


def assert_names_clip_and_fix(message: str, clip: Path, problem: str) -> None:
    assert message.startswith(f"{clip}: ")
    assert re.search(problem, message)
    assert "ffmpeg -i CLIP -ar 16000 -ac 1 -c:a pcm_s16le FIXED.wav" in message
    assert "delete it" in message and "--resample" not in message


@pytest.mark.timeout(120)  # a FIFO read as a clip would wait forever
@pytest.mark.parametrize("damage, problem", [c[1:] for c in BAD_CLIPS], ids=[c[0] for c in BAD_CLIPS])
def test_a_bad_clip_is_named_with_the_fix_and_leaves_no_cache(tmp_path, paths, damage, problem):
    root, clip = damaged_copy(paths, tmp_path, damage)
    cache = tmp_path / "data"
    config = DataConfig(task="v1-12", root=str(root), data_dir=str(cache))
    with pytest.raises(AudioFormatError) as caught:
        split_waveforms(config, FEATURES, "train")
    assert_names_clip_and_fix(str(caught.value), clip, problem)
    assert not [p for p in cache.rglob("*") if p.is_file()], "a failed decode left cache files"


def test_deleting_the_bad_clip_as_the_error_says_mends_the_set(tmp_path, paths):
    root, clip = damaged_copy(paths, tmp_path, _float_with(np.nan))
    config = DataConfig(task="v1-12", root=str(root), data_dir=str(tmp_path / "data"))
    with pytest.raises(AudioFormatError):
        split_waveforms(config, FEATURES, "train")
    clip.unlink()  # a training clip: no split list names it
    waveforms, _ = split_waveforms(config, FEATURES, "train")
    assert np.isfinite(waveforms).all()
    assert len(list((tmp_path / "data").rglob("*.npy"))) == 2


def test_a_bad_background_recording_is_named_with_the_fix(tmp_path, paths):
    root = shutil.copytree(paths["synth"], tmp_path / "set", symlinks=True)
    noise = root / speech_commands.noise_files(root)[0]
    _resampled_to_8khz(noise)
    config = DataConfig(task="v1-12", protocol="standard", root=str(root), data_dir=str(tmp_path / "data"))
    with pytest.raises(AudioFormatError) as caught:
        split_waveforms(config, FEATURES, "validation")
    assert_names_clip_and_fix(str(caught.value), noise, "sample rate is 8000 Hz")


def test_a_stereo_clip_is_averaged_to_mono_as_documented(tmp_path, paths):
    root = shutil.copytree(paths["synth"], tmp_path / "set", symlinks=True)
    name = speech_commands.split_files(root, "train")[5]
    mono = read_wav(root / name)
    sf.write(root / name, np.stack([mono, mono], axis=1), 16000, subtype="PCM_16")
    config = DataConfig(task="v1-12", root=str(root), data_dir=str(tmp_path / "data"))
    waveforms, _ = split_waveforms(config, FEATURES, "train")
    row = speech_commands.split_files(root, "train").index(name)
    np.testing.assert_array_equal(waveforms[row, : len(mono)], mono)


def _train_teacher_on(damage):
    def argv(paths: dict[str, Path], tmp: Path) -> list:
        root, _ = damaged_copy(paths, tmp, damage)
        return ["train-teacher", "--data", root, "--out", tmp / "run", "--epochs", "1", "--no-progress"]

    return argv


def _no_cache_written(paths: dict[str, Path], tmp: Path) -> None:
    assert not list((tmp / "bifsmn-data").rglob("*.npy")), "a failed decode left cache files"


CLIP_CASES = [
    Case(
        id="train-teacher-clip-at-8khz",
        argv=_train_teacher_on(_resampled_to_8khz),
        expect=(r"train-teacher: error: \S+/set/\w+/\S+_nohash_0\.wav: sample rate is 8000 Hz",
                r"ffmpeg -i CLIP -ar 16000", r"delete it"),
        check=_no_cache_written,
    ),
    Case(
        id="train-teacher-clip-with-nan",
        argv=_train_teacher_on(_float_with(np.nan)),
        expect=(r"train-teacher: error: \S+_nohash_0\.wav: float WAV contains NaN",
                r"ffmpeg -i CLIP -ar 16000"),
        check=_no_cache_written,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CLIP_CASES, ids=ids(CLIP_CASES))
def test_train_teacher_on_a_bad_clip(case, paths, tmp_path):
    check_case(case, paths, tmp_path)


# --- the decoded-audio cache -----------------------------------------------------------------------

_KILLED_LOAD = """
import sys, time
import bifsmn_tf
from bifsmn_tf.data import speech_commands
from bifsmn_tf.data.pipeline import DataConfig, split_waveforms
from bifsmn_tf.features import FeatureConfig

root, stall_on, data_dir = sys.argv[1:]
read_clip = speech_commands.read_clip

def stalled(path, *args, **kwargs):
    while path.name == stall_on:  # inside the cache write, until the test kills this process
        time.sleep(1)
    return read_clip(path, *args, **kwargs)

speech_commands.read_clip = stalled
split_waveforms(DataConfig(task="v1-12", root=root, data_dir=data_dir), FeatureConfig(), "train")
"""


def test_a_killed_cache_write_is_neither_trusted_nor_left_behind(tmp_path, paths, monkeypatch):
    root, data = paths["synth"], tmp_path / "data"
    cache = data / "cache" / "audio"
    config = DataConfig(task="v1-12", root=str(root), data_dir=str(data))
    stall_on = speech_commands.split_files(root, "train")[-1].split("/")[1]
    killed = subprocess.Popen([sys.executable, "-c", _KILLED_LOAD, str(root), stall_on, str(data)])

    # A second writer, alive in this process, held inside its cache write until `go`.
    go, stalled = threading.Event(), []
    read_clip = speech_commands.read_clip

    def stall_once(path, *args, **kwargs):
        if path.name == stall_on and not stalled:
            stalled.append(path)
            go.wait(timeout=120)
        return read_clip(path, *args, **kwargs)

    monkeypatch.setattr(speech_commands, "read_clip", stall_once)
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        alive = thread.submit(split_waveforms, config, FEATURES, "train")
        try:
            deadline = time.monotonic() + 120
            while len(list(cache.glob(".*.tmp.npy"))) < 2:
                assert killed.poll() is None and not alive.done(), "a writer ended early"
                assert time.monotonic() < deadline, "the writers never started writing the cache"
                time.sleep(0.1)
        finally:
            killed.kill()
            killed.wait()
        waveforms, _ = split_waveforms(config, FEATURES, "train")
        assert len(list(cache.glob(".*.tmp.npy"))) == 1, "the killed writer's file was kept"
        go.set()
        np.testing.assert_array_equal(alive.result(timeout=120)[0], waveforms)
    assert not list(cache.glob(".*")), "the live writer's file was removed or left behind"

    # A cache file damaged from outside (a half-finished copy) is decoded again, not trusted.
    clips = next(cache.glob("*.clips.npy"))
    clips.write_bytes(clips.read_bytes()[: clips.stat().st_size // 2])
    again, _ = split_waveforms(config, FEATURES, "train")
    np.testing.assert_array_equal(again, waveforms)


# --- full disks ------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path``: a real file system that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill up needs root")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves ``leave`` bytes free on ``disk``; delete it to make room."""
    status = os.statvfs(disk)
    ballast = disk / "ballast"
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, status.f_bavail * status.f_frsize - leave)
    return ballast


def test_synth_on_a_full_disk_says_so_and_resumes_after_room_is_made(tmp_path):
    # espeak alone, 3 speakers: the ten 30-s background recordings and one speaker's 30 clips
    # fit in what the ballast leaves; the second speaker does not.
    page = os.sysconf("SC_PAGE_SIZE")  # what a tmpfs file takes is whole pages

    def on_disk(seconds: float) -> int:
        return -(-(int(seconds * 16000) * 2 + 44) // page) * page

    with small_disk(tmp_path / "disk", "24m") as disk:
        ballast = fill(disk, 10 * on_disk(30) + 45 * on_disk(1))
        out = disk / "set"
        argv = [
            "data",
            "synth",
            "--out",
            out,
            "--clips-per-word",
            "3",
            "--engines",
            "espeak",
            "--jobs",
            "1",
            "--no-progress",
        ]
        full = check_case(
            Case(id="full", argv=lambda p, t: argv, expect=(r"No space left on device", r"run the same command again")),
            {}, tmp_path,
        )  # fmt: skip
        assert f"error: {out}: cannot write there" in full.err
        journal = (out / ".partial" / "speakers.jsonl").read_text().splitlines()
        assert len(journal) == 1, "the test should fail after one finished speaker"

        ballast.unlink()
        resumed = run_cli(argv)
        assert resumed.code == 0 and f"{out}: resumed; 90 clips" in resumed.out, resumed.err
        assert speech_commands.check_layout(out) == 90


def test_a_full_disk_under_the_audio_cache_is_named(tmp_path, paths):
    with small_disk(tmp_path / "disk", "1m") as disk:
        config = DataConfig(task="v1-12", root=str(paths["synth"]), data_dir=str(disk))
        with pytest.raises(speech_commands.DatasetError) as caught:
            split_waveforms(config, FEATURES, "train")
        assert str(caught.value).startswith(f"{disk / 'cache' / 'audio'}: cannot write the decoded audio")
        assert "No space left on device" in str(caught.value)
        assert not [p for p in disk.rglob("*") if p.is_file()]


def test_a_full_disk_under_download_says_so(tmp_path, paths):
    with small_disk(tmp_path / "disk", "64k") as disk:
        fetched = run_cli(
            ["data", "download", "--version", "v1", "--data-home", disk, "--from", _url(paths, "v1.tar.gz")]
        )
        assert fetched.code == 2 and "No space left on device" in fetched.err, fetched.err
        assert f"error: {disk / 'downloads'}/speech_commands_v0.01.tar.gz.part: cannot write" in fetched.err
    with small_disk(tmp_path / "disk2", "1m") as disk:
        extracted = run_cli(["data", "download", "--version", "v1", "--data-home", disk, "--from", paths["archive"]])
        assert extracted.code == 2 and "No space left on device" in extracted.err, extracted.err
        assert f"error: {disk}: cannot extract v1.tar.gz there" in extracted.err
        assert list(disk.iterdir()) == [], "a failed extraction left files"


# --- data synth: nonsense arguments ----------------------------------------------------------------


def _synth(out, *flags):
    return ["data", "synth", "--out", out, *flags, "--engines", "espeak", "--no-progress"]


def _file(tmp: Path) -> Path:
    (tmp / "file").write_text("mine\n")
    return tmp / "file"


def _read_only(tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes in a read-only directory (tested as another user elsewhere)")
    (tmp / "locked").mkdir(mode=0o555)
    return tmp / "locked"


def _nothing_made(paths: dict[str, Path], tmp: Path) -> None:
    assert not (tmp / "out").exists()


def _file_untouched(paths: dict[str, Path], tmp: Path) -> None:
    assert (tmp / "file").read_text() == "mine\n"


SYNTH_CASES = [
    Case("engines-empty", lambda p, t: ["data", "synth", "--out", t / "out", "--engines", ""],
         expect=(r"--engines: invalid choice: ''",), check=_nothing_made),
    Case("engines-none", lambda p, t: ["data", "synth", "--out", t / "out", "--engines"],
         expect=(r"--engines: expected at least one argument",), check=_nothing_made),
    Case("negatives-too-many", lambda p, t: _synth(t / "out", "--negatives-per-speaker", "500"),
         expect=(r"negatives_per_speaker must be in \[0, 159\], got 500",), check=_nothing_made),
    Case("out-dir-is-a-file", lambda p, t: _synth(_file(t)),
         expect=(r"--out .*/file is a file; a directory is needed there",), check=_file_untouched),
    Case("out-dir-under-a-file", lambda p, t: _synth(_file(t) / "out"),
         expect=(r"--out .*/file/out lies under .*/file, which is a file",), check=_file_untouched),
    Case("out-dir-read-only", lambda p, t: _synth(_read_only(t) / "out"),
         expect=(r"--out .*/locked/out: cannot create it in .*/locked \(permission denied\)",)),
    Case("clips-per-word-0", lambda p, t: _synth(t / "out", "--clips-per-word", "0"),
         expect=(r"clips_per_word must be at least 3 .* got 0",), check=_nothing_made),
    Case("clips-per-word-negative", lambda p, t: _synth(t / "out", "--clips-per-word", "-4"),
         expect=(r"at least 3 .* got -4",), check=_nothing_made),
    Case("clips-per-word-huge", lambda p, t: _synth(t / "out", "--clips-per-word", str(10**12)),
         expect=(r"clips_per_word must be at most 10000 .* got 1000000000000",), check=_nothing_made),
    Case("clips-per-word-not-a-number", lambda p, t: _synth(t / "out", "--clips-per-word", "many"),
         expect=(r"--clips-per-word: invalid int value: 'many'",), check=_nothing_made),
    Case("jobs-0", lambda p, t: _synth(t / "out", "--clips-per-word", "3", "--jobs", "0"),
         expect=(r"jobs must be at least 1, got 0",), check=_nothing_made),
    Case("jobs-negative", lambda p, t: _synth(t / "out", "--clips-per-word", "3", "--jobs", "-2"),
         expect=(r"jobs must be at least 1, got -2",), check=_nothing_made),
    Case("engines-unknown", lambda p, t: ["data", "synth", "--out", t / "out", "--engines", "espeak", "festival"],
         expect=(r"--engines: invalid choice: 'festival' \(choose from 'espeak', 'pico'",), check=_nothing_made),
    Case("engines-twice", lambda p, t: ["data", "synth", "--out", t / "out", "--engines", "pico", "pico"],
         expect=(r"engines named twice: \['pico', 'pico'\]",), check=_nothing_made),
    Case("words-unknown", lambda p, t: _synth(t / "out", "--words", "v3"),
         expect=(r"--words: invalid choice: 'v3'",), check=_nothing_made),
]  # fmt: skip


@pytest.mark.parametrize("case", SYNTH_CASES, ids=ids(SYNTH_CASES))
def test_data_synth(case, paths, tmp_path):
    check_case(case, paths, tmp_path)


# --- data download: sources that are not a dataset -------------------------------------------------


def _download(source, data=None):
    def argv(paths: dict[str, Path], tmp: Path) -> list:
        where = tmp / "data" if data is None else data(tmp)
        return ["data", "download", "--version", "v1", "--data-home", where, "--from", source(paths, tmp)]

    return argv


def _no_dataset(paths: dict[str, Path], tmp: Path) -> None:
    data = tmp / "data"
    leftovers = sorted(p.name for p in data.iterdir()) if data.is_dir() else []
    assert leftovers in ([], ["downloads"]), f"left in the data dir: {leftovers}"
    assert not (data / "downloads").exists() or not list((data / "downloads").iterdir())


DOWNLOAD_CASES = [
    Case("from-a-real-archive", _download(lambda p, t: p["archive"]), code=0,
         expect=(r"speech_commands_v0\.01: 90 clips ready",)),
    Case("from-a-missing-path", _download(lambda p, t: t / "nowhere.tar.gz"),
         expect=(r"/nowhere\.tar\.gz: no such archive or directory",), check=_no_dataset),
    Case("from-a-directory-that-is-no-dataset", _download(lambda p, t: p["photos"]),
         expect=(r"/photos: no validation_list\.txt at its top level \(not a Speech Commands dataset\?\)",),
         check=_no_dataset),
    Case("from-a-text-file", _download(lambda p, t: p["notes.txt"]),
         expect=(r"/notes\.txt: damaged or truncated archive \(not a gzip file\)",), check=_no_dataset),
    Case("from-a-truncated-archive", _download(lambda p, t: p["cut.tar.gz"]),
         expect=(r"/cut\.tar\.gz: damaged or truncated archive",), check=_no_dataset),
    Case("from-an-archive-of-no-dataset", _download(lambda p, t: p["photos.tar.gz"]),
         expect=(r"error: /\S+/photos\.tar\.gz: no validation_list\.txt at its top level",), check=_no_dataset),
    Case("from-a-url-that-404s", _download(lambda p, t: _url(p, "missing.tar.gz")),
         expect=(r"error: http://127\.0\.0\.1:\d+/missing\.tar\.gz: HTTP 404",), check=_no_dataset),
    Case("from-a-url-of-no-dataset", _download(lambda p, t: _url(p, "photos.tar.gz")),
         expect=(r"error: http://127\.0\.0\.1:\d+/photos\.tar\.gz: no validation_list\.txt at its top level",),
         check=_no_dataset),
    Case("data-home-is-a-file", _download(lambda p, t: p["archive"], data=_file),
         expect=(r"/file: cannot create the data directory \(File exists\)",)),
]  # fmt: skip


@pytest.mark.parametrize("case", DOWNLOAD_CASES, ids=ids(DOWNLOAD_CASES))
def test_data_download(case, paths, tmp_path):
    result = check_case(case, paths, tmp_path)
    assert ".extracting" not in result.err, "the error names a deleted temporary folder"
