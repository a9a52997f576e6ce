"""Download, verification, safe extraction, layouts, splits, labels and protocols."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from speech_commands_tree import (
    ArchiveServer,
    make_archive,
    make_test_set_tree,
    make_tree,
)

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.data import archives
from bifsmn_tf.data import speech_commands as sc
from bifsmn_tf.data.labels import KEYWORDS, SILENCE, UNKNOWN, WORDS, task_labels

ARCHIVE = "speech_commands_v0.02.tar.gz"


@pytest.fixture(scope="module")
def tree_v2(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree") / "v2", "v2")


@pytest.fixture(scope="module")
def tree_v1(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree") / "v1", "v1")


@pytest.fixture(scope="module")
def archive_bytes(tree_v2, tmp_path_factory) -> bytes:
    return make_archive(tree_v2, tmp_path_factory.mktemp("archive") / ARCHIVE).read_bytes()


@pytest.fixture()
def server(archive_bytes):
    with ArchiveServer() as srv:
        srv.files[ARCHIVE] = archive_bytes
        yield srv


def _clip_count(root: Path) -> int:
    return sum(1 for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


def _assert_complete(root: Path, tree: Path) -> None:
    assert sc.find_dataset("v2", root.parent) == root
    assert (root / sc.COMPLETE_MARKER).is_file()
    assert _clip_count(root) == _clip_count(tree)
    assert (root / sc.VALIDATION_LIST).read_text() == (tree / sc.VALIDATION_LIST).read_text()
    assert not list(root.parent.glob(".*extracting*")), "staging directory left behind"


# --- download ------------------------------------------------------------------------------------


def test_download_from_server_verifies_and_extracts(tmp_path, server, tree_v2, archive_bytes):
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert root == tmp_path / "speech_commands_v0.02"
    _assert_complete(root, tree_v2)
    assert (tmp_path / "downloads" / ARCHIVE).read_bytes() == archive_bytes
    assert server.requests == [(ARCHIVE, None)]
    # A second call finds the complete dataset and fetches nothing.
    assert archives.download("v2", tmp_path, source=server.url(ARCHIVE)) == root
    assert len(server.requests) == 1


def test_partial_download_resumes_with_range(tmp_path, server, tree_v2, archive_bytes):
    half = len(archive_bytes) // 2
    part = tmp_path / "downloads" / f"{ARCHIVE}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_bytes[:half])
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert server.requests == [(ARCHIVE, f"bytes={half}-")]
    assert (tmp_path / "downloads" / ARCHIVE).read_bytes() == archive_bytes
    _assert_complete(root, tree_v2)


def test_dropped_connection_is_resumed(tmp_path, server, tree_v2):
    server.faults = [("drop", 100_000)]
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert server.requests == [(ARCHIVE, None), (ARCHIVE, "bytes=100000-")]
    _assert_complete(root, tree_v2)


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, tree_v2, archive_bytes):
    part = tmp_path / "downloads" / f"{ARCHIVE}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive_bytes[:1000])
    server.faults = ["ignore_range"]
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert (tmp_path / "downloads" / ARCHIVE).read_bytes() == archive_bytes
    _assert_complete(root, tree_v2)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_archive_on_disk_is_refetched(tmp_path, server, tree_v2, archive_bytes, damage):
    archive = tmp_path / "downloads" / ARCHIVE
    archive.parent.mkdir(parents=True)
    middle = len(archive_bytes) // 2
    if damage == "flip":
        archive.write_bytes(archive_bytes[:middle] + b"\0" * 512 + archive_bytes[middle + 512 :])
    else:
        archive.write_bytes(archive_bytes[:middle])
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert server.requests == [(ARCHIVE, None)]
    assert archive.read_bytes() == archive_bytes
    _assert_complete(root, tree_v2)


def test_corrupt_transfer_is_detected_and_refetched(tmp_path, server, tree_v2):
    server.faults = ["corrupt"]
    root = archives.download("v2", tmp_path, source=server.url(ARCHIVE))
    assert len(server.requests) == 2
    _assert_complete(root, tree_v2)


def test_truncated_archive_on_server_fails_without_a_dataset(tmp_path, server, archive_bytes):
    server.files[ARCHIVE] = archive_bytes[: len(archive_bytes) * 2 // 3]
    with pytest.raises(archives.DownloadError, match="no intact archive after 2 attempts"):
        archives.download("v2", tmp_path, source=server.url(ARCHIVE), attempts=2)
    assert len(server.requests) == 2
    assert not (tmp_path / "speech_commands_v0.02").exists()
    assert not list(tmp_path.glob(".*extracting*"))
    with pytest.raises(sc.DatasetError, match="no Speech Commands v2 dataset here"):
        sc.find_dataset("v2", tmp_path)


def test_sha256_is_checked(tmp_path, server, archive_bytes):
    import hashlib

    with pytest.raises(archives.DownloadError, match="SHA-256"):
        archives.download("v2", tmp_path, source=server.url(ARCHIVE), sha256="0" * 64, attempts=1)
    good = hashlib.sha256(archive_bytes).hexdigest()
    assert archives.download("v2", tmp_path, source=server.url(ARCHIVE), sha256=good.upper()).is_dir()


def test_http_error_is_reported(tmp_path, server):
    with pytest.raises(archives.DownloadError, match="HTTP 404"):
        archives.download("v2", tmp_path, source=server.url("missing.tar.gz"))


def test_an_archive_of_no_dataset_is_named_and_not_kept_for_a_rerun(tmp_path, server, archive_bytes):
    photos = tmp_path / "photos"
    (photos / "holiday").mkdir(parents=True)
    (photos / "holiday" / "beach.txt").write_text("sand\n")
    server.files["photos.tar.gz"] = make_archive(photos, tmp_path / "photos.tar.gz").read_bytes()
    wrong = server.url("photos.tar.gz")
    with pytest.raises(archives.WrongArchiveError) as caught:
        archives.download("v2", tmp_path / "data", source=wrong)
    assert str(caught.value) == f"{wrong}: no validation_list.txt at its top level (not a Speech Commands dataset?)"
    # The rerun with the right URL fetches it, rather than finding the wrong archive on disk.
    assert archives.download("v2", tmp_path / "data", source=server.url(ARCHIVE)).is_dir()
    assert server.requests == [("photos.tar.gz", None), (ARCHIVE, None)]


def test_local_archive_and_extracted_directory(tmp_path, tree_v2, archive_bytes):
    archive = tmp_path / "mine.tar.gz"
    archive.write_bytes(archive_bytes)
    root = archives.download("v2", tmp_path / "a", source=archive)
    _assert_complete(root, tree_v2)
    linked = archives.download("v2", tmp_path / "b", source=tree_v2)
    assert linked.is_symlink() and linked.resolve() == tree_v2.resolve()
    assert sc.find_dataset("v2", tmp_path / "b") == linked


def test_local_damaged_archive_is_an_error(tmp_path, archive_bytes):
    archive = tmp_path / "mine.tar.gz"
    archive.write_bytes(archive_bytes[:-100])
    with pytest.raises(archives.CorruptArchiveError, match="mine.tar.gz: damaged or truncated"):
        archives.download("v2", tmp_path / "data", source=archive)
    assert not (tmp_path / "data" / "speech_commands_v0.02").exists()


def _tar_with(member: tarfile.TarInfo, payload: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("./yes/ok_nohash_0.wav")
        good.size = 1
        tar.addfile(good, io.BytesIO(b"x"))
        if member.isfile():
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        else:
            tar.addfile(member)
    return buffer.getvalue()


def _symlink_member() -> tarfile.TarInfo:
    member = tarfile.TarInfo("./yes/link.wav")
    member.type = tarfile.SYMTYPE
    member.linkname = "/etc/passwd"
    return member


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (tarfile.TarInfo("../escaped.wav"), "'..'"),
        (tarfile.TarInfo("./yes/../../escaped.wav"), "'..'"),
        (tarfile.TarInfo("/tmp/absolute.wav"), "absolute path"),
        (_symlink_member(), "only regular files and directories"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
def test_unsafe_members_are_refused(tmp_path, member, problem):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar_with(member))
    data_dir = tmp_path / "deep" / "data"
    with pytest.raises(archives.UnsafeArchiveError, match=problem):
        archives.download("v2", data_dir, source=archive)
    assert not (tmp_path / "deep" / "escaped.wav").exists()
    assert not (tmp_path / "escaped.wav").exists()
    assert not (data_dir / "speech_commands_v0.02").exists()
    assert not list(data_dir.glob(".*extracting*"))


_SLOW_EXTRACT = """
import sys, tarfile, time
from bifsmn_tf.data import archives

extract = tarfile.TarFile.extract
done = 0

def slow_extract(self, *args, **kwargs):
    global done
    done += 1
    if done == 20:
        print("extracting", flush=True)
        time.sleep(120)
    return extract(self, *args, **kwargs)

tarfile.TarFile.extract = slow_extract
archives.download("v2", sys.argv[1], source=sys.argv[2])
"""


def test_killed_extraction_never_looks_complete(tmp_path, tree_v2, archive_bytes):
    archive = tmp_path / ARCHIVE
    archive.write_bytes(archive_bytes)
    data_dir = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXTRACT, str(data_dir), str(archive)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "extracting"
    finally:
        child.kill()
        child.wait()
    staging = list(data_dir.glob(".speech_commands_v0.02.extracting-*"))
    assert len(staging) == 1 and any(staging[0].rglob("*.wav")), "expected a half extraction"
    assert not (data_dir / "speech_commands_v0.02").exists()
    with pytest.raises(sc.DatasetError):
        sc.find_dataset("v2", data_dir)
    root = archives.download("v2", data_dir, source=archive)
    _assert_complete(root, tree_v2)


def test_interrupted_extraction_cleans_up(tmp_path, archive_bytes, monkeypatch):
    archive = tmp_path / ARCHIVE
    archive.write_bytes(archive_bytes)
    extract = tarfile.TarFile.extract
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        archives.download("v2", tmp_path / "data", source=archive)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []


def test_directory_without_marker_is_not_a_dataset(tmp_path, tree_v2):
    (tmp_path / "speech_commands_v0.02").mkdir()
    (tmp_path / "speech_commands_v0.02" / "yes").mkdir()
    with pytest.raises(sc.DatasetError, match="not completed by `bifsmn-tf data download`"):
        sc.find_dataset("v2", tmp_path)
    with pytest.raises(sc.DatasetError, match="not completed"):
        archives.download("v2", tmp_path, source=tree_v2)


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(sc.DATA_DIR_ENV, str(tmp_path / "env"))
    assert sc.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert sc.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv(sc.DATA_DIR_ENV)
    import platformdirs

    assert sc.resolve_data_dir() == Path(platformdirs.user_cache_dir("bifsmn-tf"))


def test_official_urls():
    assert archives.archive_url("v1") == (
        "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.01.tar.gz"
    )
    assert archives.archive_url("v2", test_set=True).endswith("/speech_commands_test_set_v0.02.tar.gz")
    with pytest.raises(ValueError, match="unknown Speech Commands version 'v3'"):
        archives.archive_url("v3")


def test_cli_download(tmp_path, server, tree_v2):
    command = [sys.executable, "-m", "bifsmn_tf.cli", "data", "download", "--version", "v2"]
    env = {**os.environ, sc.DATA_DIR_ENV: str(tmp_path)}
    done = subprocess.run([*command, "--from", server.url(ARCHIVE)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'speech_commands_v0.02'}: {_clip_count(tree_v2)} clips ready" in done.stdout
    failed = subprocess.run(
        [*command, "--test-set", "--from", server.url("nope.tar.gz")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2
    assert "HTTP 404" in failed.stderr and "Traceback" not in failed.stderr


# --- splits, labels, protocols -------------------------------------------------------------------


def test_clip_names_follow_the_official_layout():
    # A name as the official archives have it: the speaker's hash, then the take.
    assert sc.clip_path("yes", "0a2b400e", 3) == "yes/0a2b400e_nohash_3.wav"
    assert sc.speaker_of("yes/0a2b400e_nohash_3.wav") == sc.speaker_of("0a2b400e_nohash_0.wav") == "0a2b400e"
    assert sc.speaker_of(sc.clip_path("left", "espeak-0012")) == "espeak-0012"


def test_split_files_partition_the_clips(tree_v2):
    splits = {s: sc.split_files(tree_v2, s) for s in ("train", "validation", "test")}
    everything = [f for files in splits.values() for f in files]
    assert len(everything) == len(set(everything)) == _clip_count(tree_v2)
    assert splits["validation"] == sorted((tree_v2 / sc.VALIDATION_LIST).read_text().split())
    assert not any(f.startswith(sc.BACKGROUND_NOISE_DIR) for f in everything)


@pytest.mark.parametrize("split", ["train", "validation", "test"])
@pytest.mark.parametrize("task", ["v1-12", "v2-12"])
def test_bifsmn_protocol_labels(request, task, split):
    root = request.getfixturevalue("tree_v1" if task == "v1-12" else "tree_v2")
    labels = task_labels(task)
    files = sc.split_files(root, split)
    items = sc.examples(root, task, split, "bifsmn")
    counts = Counter(labels[e.label] for e in items)
    assert counts[SILENCE] == int(0.1 * len(files))
    non_keywords = [f for f in files if f.split("/")[0] not in KEYWORDS]
    assert counts[UNKNOWN] == len(non_keywords)
    assert len(WORDS[task[:2]]) - len(KEYWORDS) == (20 if task == "v1-12" else 25)
    for e in items:
        if labels[e.label] == SILENCE:
            assert e.path is None and e.noise_path is None  # an all-zero clip
        else:
            word = e.path.split("/")[0]
            assert labels[e.label] == (word if word in KEYWORDS else UNKNOWN)


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_standard_protocol_labels(tree_v2, split):
    labels = task_labels("v2-12")
    files = sc.split_files(tree_v2, split)
    n_keywords = sum(f.split("/")[0] in KEYWORDS for f in files)
    items = sc.examples(tree_v2, "v2-12", split, "standard")
    counts = Counter(labels[e.label] for e in items)
    assert counts[UNKNOWN] == counts[SILENCE] == math.ceil(0.1 * n_keywords)
    assert all(counts[k] == n_keywords // len(KEYWORDS) for k in KEYWORDS)
    begin, end = sc.NOISE_STRETCH[split]
    noise_length = 10 * 16000
    for e in items:
        if labels[e.label] == SILENCE:
            assert e.path is None and e.noise_path.startswith(sc.BACKGROUND_NOISE_DIR)
            assert begin * noise_length <= e.noise_offset <= end * noise_length - 16000
            assert 0.0 <= e.noise_gain <= 1.0
        elif labels[e.label] == UNKNOWN:
            assert e.path.split("/")[0] not in KEYWORDS
    assert items == sc.examples(tree_v2, "v2-12", split, "standard"), "protocol draws must be fixed"


@pytest.mark.parametrize("share", [0.5, 3.0, math.inf])
def test_standard_unknown_share(tree_v2, share):
    labels = task_labels("v2-12")
    files = sc.split_files(tree_v2, "train")
    n_keywords = sum(f.split("/")[0] in KEYWORDS for f in files)
    items = sc.examples(tree_v2, "v2-12", "train", "standard", unknown_share=share)
    unknowns = [e for e in items if labels[e.label] == UNKNOWN]
    expected = {0.5: math.ceil(0.5 * n_keywords), 3.0: len(files) - n_keywords, math.inf: len(files) - n_keywords}
    assert len(files) - n_keywords < 3 * n_keywords, "3.0 must ask for more than the split has"
    assert len(unknowns) == expected[share]
    default = sc.examples(tree_v2, "v2-12", "train", "standard")
    silence = [e for e in default if labels[e.label] == SILENCE]
    assert [e for e in items if labels[e.label] == SILENCE] == silence, "the same silence crops"


@pytest.mark.parametrize("protocol", sc.PROTOCOLS)
def test_v2_35_has_every_word_and_nothing_else(tree_v2, protocol):
    labels = task_labels("v2-35")
    items = sc.examples(tree_v2, "v2-35", "train", protocol)
    assert len(items) == len(sc.split_files(tree_v2, "train"))
    assert Counter(labels[e.label] for e in items) == dict.fromkeys(labels, 2)
    assert all(labels[e.label] == e.path.split("/")[0] for e in items)


def test_official_test_set_labels(tmp_path):
    tree = make_test_set_tree(tmp_path / "tree")
    archive = make_archive(tree, tmp_path / "speech_commands_test_set_v0.02.tar.gz")
    root = archives.download("v2", tmp_path / "data", source=archive, test_set=True)
    assert root.name == "speech_commands_test_set_v0.02"
    assert sc.find_dataset("v2", tmp_path / "data", test_set=True) == root
    labels = task_labels("v2-12")
    for protocol in sc.PROTOCOLS:
        items = sc.examples(root, "v2-12", "official_test", protocol)
        assert Counter(labels[e.label] for e in items) == dict.fromkeys(labels, 2)
        for e in items:
            folder = e.path.split("/")[0]
            assert labels[e.label] == {"_silence_": SILENCE, "_unknown_": UNKNOWN}.get(folder, folder)
    with pytest.raises(sc.DatasetError, match="official test set has 12 classes"):
        sc.examples(root, "v2-35", "official_test")


def test_missing_split_list_is_named(tmp_path, tree_v2):
    import shutil

    root = shutil.copytree(tree_v2, tmp_path / "root")
    (root / sc.TESTING_LIST).unlink()
    with pytest.raises(sc.DatasetError, match=f"{root / sc.TESTING_LIST}: split list missing"):
        sc.split_files(root, "train")


def test_listed_file_that_does_not_exist_is_named(tmp_path, tree_v2):
    import shutil

    root = shutil.copytree(tree_v2, tmp_path / "root")
    first = (root / sc.VALIDATION_LIST).read_text().split()[0]
    (root / first).unlink()
    with pytest.raises(sc.DatasetError, match=f"validation_list.txt: 1 listed file.*{first}"):
        sc.split_files(root, "validation")


def test_unexpected_folder_is_an_error_for_35_classes(tmp_path, tree_v2):
    import shutil

    root = shutil.copytree(tree_v2, tmp_path / "root")
    shutil.copytree(root / "yes", root / "maybe")
    assert task_labels("v2-12")[sc.examples(root, "v2-12", "train")[-1].label] == SILENCE
    with pytest.raises(sc.DatasetError, match="'maybe' is not one of the 35 words of v2-35"):
        sc.examples(root, "v2-35", "train")
