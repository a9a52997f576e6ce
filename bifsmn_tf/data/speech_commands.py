"""Google Speech Commands V1/V2: where a dataset lives, its layout, splits, labels and protocols.

On disk, everything lives under one data directory (``--data-home``, else ``$BIFSMN_DATA``, else
the user cache directory)::

    <data_dir>/downloads/speech_commands_v0.02.tar.gz     the archive (``.part`` while in transit)
    <data_dir>/speech_commands_v0.02/                     the extracted dataset
    <data_dir>/speech_commands_test_set_v0.02/            the separate official test set

:mod:`bifsmn_tf.data.archives` downloads, verifies and extracts the archives; a dataset directory
it makes appears only complete (with its :data:`COMPLETE_MARKER`).

Splits (docs/design.md#splits-and-labels): ``validation`` and ``test`` are the files listed in
``validation_list.txt`` and ``testing_list.txt``; ``train`` is every other ``<word>/*.wav``
outside ``_background_noise_``.
``official_test`` is the separate test-set archive (12 folders, with ``_silence_`` and
``_unknown_``).

Protocols for the 12-class tasks (``v2-35`` has neither silence nor unknown, so both agree):

- ``bifsmn``, the official BiFSMN code: every non-keyword is ``unknown`` (no sub-sampling), and
  ``int(0.1 * len(split))`` all-zero ``silence`` clips are added to every split.
- ``standard``, Warden's ``input_data.py`` as used by kws_streaming: ``ceil(0.1 * n_keywords)``
  ``unknown`` clips drawn with a fixed seed, and as many ``silence`` clips, each a 1-s crop of a
  ``_background_noise_`` file at a gain drawn from U(0, 1). The crops of each noise file come from
  disjoint stretches per split (first 80 % train, next 10 % validation, last 10 % test), so no
  noise is shared between training and evaluation.

``official_test`` labels come from its folders; the protocol does not change it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path, PurePosixPath

import numpy as np

from bifsmn_tf.data.audio import SAMPLE_RATE, AudioFormatError, read_audio
from bifsmn_tf.data.labels import KEYWORDS, SILENCE, TASKS, UNKNOWN, task_labels

VERSIONS: dict[str, str] = {"v1": "0.01", "v2": "0.02"}
DATA_DIR_ENV = "BIFSMN_DATA"

SPLITS = ("train", "validation", "test", "official_test")
PROTOCOLS = ("bifsmn", "standard")

# The layout every Speech Commands root shares (the downloads and ``bifsmn-tf data synth``):
# ``<word>/<speaker>_nohash_<take>.wav`` clips, the two split lists, the noise recordings.
BACKGROUND_NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
#: Clips of words no model was trained on (a synthetic set's, ``<word>/<speaker>_nohash_0.wav``
#: inside it); the leading underscore keeps them out of every split.
UNSEEN_WORDS_DIR = "_unseen_words_"
#: Every clip is this long at :data:`~bifsmn_tf.data.audio.SAMPLE_RATE` (shorter downloaded
#: clips are padded by the pipeline).
CLIP_SECONDS = 1.0
CLIP_SAMPLES = int(CLIP_SECONDS * SAMPLE_RATE)
#: What a clip's name has between its speaker and its take. The official split lists were made
#: by hashing the part before it, so that all of a speaker's takes share a split.
NOHASH = "_nohash_"
#: The file that marks a dataset directory as complete: its extraction writes it last.
COMPLETE_MARKER = ".bifsmn-complete.json"
#: Folder names of the official test-set archives for the two classes that are not words.
TEST_SET_FOLDERS = {"_silence_": SILENCE, "_unknown_": UNKNOWN}

#: Seed of the ``standard`` protocol's draws (Warden's ``RANDOM_SEED``): fixed, so that every
#: result under ``standard`` is measured on the same clips.
PROTOCOL_SEED = 59185
#: Share of silence (bifsmn: of the split; standard: of its keywords) and of unknown (standard).
SILENCE_SHARE = 0.1
UNKNOWN_SHARE = 0.1
#: Per split, the stretch of each background-noise file that ``standard`` silence is cut from.
NOISE_STRETCH = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


class DatasetError(ValueError):
    """A dataset directory, list file or archive is not what it should be; names the path."""


# --- where things live ---------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$BIFSMN_DATA``, else the user cache dir (``platformdirs``)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bifsmn-tf"))


def archive_name(version: str, *, test_set: bool = False) -> str:
    """``speech_commands_v0.02`` or ``speech_commands_test_set_v0.02`` for ``version`` ``v2``."""
    if version not in VERSIONS:
        raise ValueError(f"unknown Speech Commands version {version!r}; choose one of {list(VERSIONS)}")
    kind = "speech_commands_test_set" if test_set else "speech_commands"
    return f"{kind}_v{VERSIONS[version]}"


def dataset_dir(version: str, data_dir: str | Path | None = None, *, test_set: bool = False) -> Path:
    """Where :func:`~bifsmn_tf.data.archives.download` puts ``version`` (the path is not checked)."""
    return resolve_data_dir(data_dir) / archive_name(version, test_set=test_set)


def find_dataset(version: str, data_dir: str | Path | None = None, *, test_set: bool = False) -> Path:
    """The root of a complete downloaded dataset, else a :class:`DatasetError` saying how."""
    path = dataset_dir(version, data_dir, test_set=test_set)
    flag = " --test-set" if test_set else ""
    hint = f"run `bifsmn-tf data download --version {version}{flag} --data-home {path.parent}`"
    if path.is_symlink():
        check_layout(path.resolve(), test_set=test_set)
        return path
    if not path.is_dir():
        raise DatasetError(f"{path}: no Speech Commands {version} dataset here; {hint}")
    if not (path / COMPLETE_MARKER).is_file():
        raise DatasetError(
            f"{path}: exists but was not completed by `bifsmn-tf data download` (no "
            f"{COMPLETE_MARKER}); remove it and {hint}, or register a directory you extracted "
            "yourself with `--from DIR`"
        )
    return path


def check_layout(root: Path, *, test_set: bool = False, where: str | Path | None = None) -> int:
    """Check that ``root`` is in the Speech Commands layout; return its number of clips.

    The :class:`DatasetError` says what is missing and names ``where`` (default ``root``).
    """
    where = root if where is None else where
    if not root.is_dir():
        raise DatasetError(f"{where}: not a directory")
    if not test_set:
        for name in (VALIDATION_LIST, TESTING_LIST):
            if not (root / name).is_file():
                raise DatasetError(f"{where}: no {name} at its top level (not a Speech Commands dataset?)")
    clips = sum(1 for folder in _clip_folders(root, test_set=test_set) for _ in folder.glob("*.wav"))
    if clips == 0:
        raise DatasetError(f"{where}: no <word>/*.wav clips (not a Speech Commands dataset?)")
    return clips


def clip_path(word: str, speaker: str, take: int = 0) -> str:
    """``<word>/<speaker>_nohash_<take>.wav``: where a clip lives, relative to the dataset root.

    Args:
        word: The clip's folder (its label).
        speaker: The speaker's id, the part of the name that decides the split.
        take: Which of the speaker's takes of ``word`` it is.

    Returns:
        The POSIX path of the clip.
    """
    return f"{word}/{speaker}{NOHASH}{take}.wav"


def speaker_of(path: str) -> str:
    """The speaker of a clip at ``path`` (a path or a name): the part of its name before ``_nohash_``.

    Args:
        path: A clip's path, as :func:`clip_path` makes it.

    Returns:
        The speaker's id.
    """
    return PurePosixPath(path).name.split(NOHASH)[0]


def _clip_folders(root: Path, *, test_set: bool) -> list[Path]:
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and (test_set or not p.name.startswith("_")) and p.name != BACKGROUND_NOISE_DIR
    )


# --- splits, labels, protocols -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
    """One clip of a split, as a recipe.

    Exactly one of three kinds: a file (``path``), all-zero silence (no ``path``, no
    ``noise_path``), or a crop of background noise (``noise_path``, ``noise_offset`` in samples,
    ``noise_gain``). Paths are relative to the dataset root, in POSIX form.
    """

    label: int
    path: str | None = None
    noise_path: str | None = None
    noise_offset: int = 0
    noise_gain: float = 0.0


def bad_clip(path: Path, problem: str, sample_rate: int = SAMPLE_RATE) -> AudioFormatError:
    """The error for a clip of a dataset that cannot be used: what is wrong, and what to do."""
    return AudioFormatError(
        path,
        f"{problem}; every clip must be a {sample_rate} Hz mono 16-bit PCM WAV file: convert it "
        f"(`ffmpeg -i CLIP -ar {sample_rate} -ac 1 -c:a pcm_s16le FIXED.wav`, then move FIXED.wav "
        f"over it) or delete it and its line in {VALIDATION_LIST} or {TESTING_LIST} if it has one "
        "(`bifsmn-tf data synth` and `data download` never write such a clip: a set they made has "
        "been damaged since, so make or download it again)",
    )


def read_clip(path: Path, sample_rate: int = SAMPLE_RATE, *, resample: bool = False) -> np.ndarray:
    """:func:`~bifsmn_tf.data.audio.read_audio` for a clip of a dataset: the error of one that
    cannot be read says how to mend the dataset (:func:`bad_clip`)."""
    try:
        return read_audio(path, sample_rate, resample=resample)
    except AudioFormatError as err:
        raise bad_clip(err.path, err.problem, sample_rate) from None


def split_files(root: Path, split: str) -> list[str]:
    """Sorted ``word/file.wav`` paths of ``split`` in the dataset at ``root``.

    For ``official_test``, ``root`` is the test-set root and every clip in it is returned.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if split == "official_test":
        check_layout(root, test_set=True)
        return _wav_files(root, test_set=True)
    validation = _read_list(root, VALIDATION_LIST)
    testing = _read_list(root, TESTING_LIST)
    if split == "validation":
        return sorted(validation)
    if split == "test":
        return sorted(testing)
    held_out = set(validation) | set(testing)
    return [f for f in _wav_files(root, test_set=False) if f not in held_out]


def _wav_files(root: Path, *, test_set: bool) -> list[str]:
    return sorted(
        f"{folder.name}/{wav.name}" for folder in _clip_folders(root, test_set=test_set) for wav in folder.glob("*.wav")
    )


def _read_list(root: Path, name: str) -> list[str]:
    path = root / name
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        raise DatasetError(f"{path}: split list missing; every Speech Commands root has one") from None
    missing = [entry for entry in lines if not (root / entry).is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} listed file(s) do not exist, e.g. {missing[:3]}")
    return lines


def label_of(word: str, task: str) -> int:
    """Index of the folder ``word`` in ``task_labels(task)``.

    12-class tasks: a keyword is itself, ``_silence_`` is silence, anything else (including
    ``_unknown_``) is unknown. ``v2-35``: a folder outside the 35 words is an error rather than
    the official code's silent drop.
    """
    labels = task_labels(task)
    if len(labels) == 12:
        if word in KEYWORDS:
            return labels.index(word)
        return labels.index(TEST_SET_FOLDERS.get(word, UNKNOWN))
    if word not in labels:
        raise DatasetError(f"folder {word!r} is not one of the {len(labels)} words of {task}")
    return labels.index(word)


def examples(
    root: Path,
    task: str,
    split: str,
    protocol: str = "bifsmn",
    *,
    sample_rate: int = SAMPLE_RATE,
    resample: bool = False,
    unknown_share: float = UNKNOWN_SHARE,
) -> list[Example]:
    """The labelled clips of ``split`` for ``task`` under ``protocol`` (see the module doc).

    ``sample_rate`` fixes the 1-s length of ``standard`` silence crops; the background-noise files
    are read (with ``resample``) only for that protocol. ``unknown_share``: ``standard``'s unknown
    clips per keyword clip (Warden's ``unknown_percentage`` / 100), at most every non-keyword of
    the split (``math.inf``); a different share keeps the same silence crops.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    files = split_files(root, split)
    if split == "official_test" and len(task_labels(task)) != 12:
        raise DatasetError(f"{root}: the official test set has 12 classes; task {task} has 35")
    labelled = [Example(label_of(f.split("/")[0], task), path=f) for f in files]
    if split == "official_test" or len(task_labels(task)) != 12:
        return labelled

    labels = task_labels(task)
    silence, unknown = labels.index(SILENCE), labels.index(UNKNOWN)
    if protocol == "bifsmn":
        count = int(SILENCE_SHARE * len(labelled))
        return labelled + [Example(silence)] * count

    rng = np.random.default_rng([PROTOCOL_SEED, SPLITS.index(split)])
    keywords = [e for e in labelled if e.label != unknown]
    unknowns = [e for e in labelled if e.label == unknown]
    wanted = unknown_share * len(keywords)
    n_unknown = len(unknowns) if wanted >= len(unknowns) else math.ceil(wanted)
    chosen = [unknowns[i] for i in sorted(rng.permutation(len(unknowns))[:n_unknown])]
    n_silence = math.ceil(SILENCE_SHARE * len(keywords))
    crops = _noise_crops(root, split, n_silence, silence, rng, sample_rate=sample_rate, resample=resample)
    return keywords + chosen + crops


def noise_files(root: Path) -> list[str]:
    """Sorted ``_background_noise_/*.wav`` paths of the dataset at ``root``."""
    folder = Path(root) / BACKGROUND_NOISE_DIR
    return sorted(f"{BACKGROUND_NOISE_DIR}/{p.name}" for p in folder.glob("*.wav"))


def _noise_crops(
    root: Path,
    split: str,
    count: int,
    label: int,
    rng: np.random.Generator,
    *,
    sample_rate: int,
    resample: bool,
) -> list[Example]:
    if count == 0:
        return []
    begin, end = NOISE_STRETCH[split]
    stretches: list[tuple[str, int, int]] = []
    for name in noise_files(root):
        length = len(read_clip(root / name, sample_rate, resample=resample))
        first, stop = int(begin * length), int(end * length)
        if stop - first >= sample_rate:
            stretches.append((name, first, stop - sample_rate))
    if not stretches:
        raise DatasetError(
            f"{root / BACKGROUND_NOISE_DIR}: the standard protocol cuts {split} silence from "
            f"background-noise files, but none has a {split} stretch ({begin:.0%}-{end:.0%}) of 1 s"
        )
    crops = []
    for _ in range(count):
        name, first, last = stretches[rng.integers(len(stretches))]
        crops.append(
            Example(
                label,
                noise_path=name,
                noise_offset=int(rng.integers(first, last + 1)),
                noise_gain=float(rng.uniform(0.0, 1.0)),
            )
        )
    return crops
