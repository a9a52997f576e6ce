"""tf.data pipelines: a split of a Speech Commands-layout dataset -> batches of (features, labels).

Decoding WAV files is the slow part, so each split's clips are decoded once into an int16 array
of fixed-length clips (plus their true lengths; a clip longer than ``clip_samples`` is truncated,
as the official ``FixAudioLength`` does) and, with ``cache_audio``, kept as ``.npy`` files
under ``<data_dir>/cache/audio/``. A cache file's name carries a hash of the file list, sizes,
modification times and decoding settings, so a changed dataset is decoded again; it is written
atomically and read memory-mapped (the V2 training split is ~2.7 GB as int16). A clip that cannot
be decoded stops the load with an ``AudioFormatError`` naming it, before any training, and leaves
no cache; the temporary file of a process killed while writing is removed by the next load.

Batches are gathered from that array by example index, then augmented (training only) and turned
into features in batched TF ops. In training, each pass over the dataset is the next epoch: its
order and every clip's augmentation draws are stateless functions of ``(seed, epoch, clip)``, so a
seed reproduces the stream and ``first_epoch`` resumes it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import math
import os
import stat
from pathlib import Path, PurePosixPath

import numpy as np
import tensorflow as tf

from bifsmn_tf.config import ConfigError, JsonConfig
from bifsmn_tf.data import speech_commands
from bifsmn_tf.data.augment import NUM_DRAWS, AugmentConfig, NoiseBank, augment_batch
from bifsmn_tf.data.labels import SILENCE, TASKS, UNKNOWN
from bifsmn_tf.data.run_ons import run_on_clips
from bifsmn_tf.features import FeatureConfig, build_frontend
from bifsmn_tf.fileio import atomic_path

_CACHE_FORMAT = 1
_PCM_SCALE = 32768.0
#: Keys the run-ons' generator apart from every other use of the seed.
_RUN_ON_STREAM = 0x52554E


@dataclasses.dataclass(frozen=True)
class DataConfig(JsonConfig):
    """Which data, labelled how, batched how.

    Attributes:
        task: ``v1-12``, ``v2-12`` or ``v2-35``; picks the dataset version and the label order.
        protocol: ``bifsmn`` or ``standard`` (see :mod:`bifsmn_tf.data.speech_commands`); record
            it with every result.
        data_dir: where datasets and caches live; ``None``: ``$BIFSMN_DATA``, else the user cache.
        root: a dataset root in the Speech Commands layout to use instead of the downloaded one
            (e.g. the synthetic keyword set).
        batch_size: clips per batch.
        seed: keys the training order and augmentation.
        augment: training augmentation.
        cache_audio: keep the decoded clips on disk (else they are decoded in every process).
        resample: resample clips at another rate instead of rejecting them.
        train_unknown_share: training split only: each epoch holds this many ``unknown`` clips
            per keyword clip, drawn afresh every epoch from every non-keyword clip of the split
            (either protocol), so that over the epochs the model hears every non-keyword of
            every speaker for the cost of a fixed share per epoch. ``None``: the protocol's own
            unknown clips, the same every epoch. Evaluation splits keep the protocol's.
        train_run_on_share: training split only: this many one-second windows of non-keyword
            words said one after another (:mod:`bifsmn_tf.data.run_ons`) per non-keyword clip of
            the split join the ``unknown`` clips the epochs draw from; made once per run from
            ``seed``. Needs ``train_unknown_share``. 0: none.
    """

    task: str = "v2-12"
    protocol: str = "bifsmn"
    data_dir: str | None = None
    root: str | None = None
    batch_size: int = 96
    seed: int = 0
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    cache_audio: bool = True
    resample: bool = False
    train_unknown_share: float | None = None
    train_run_on_share: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"DataConfig: task must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.protocol not in speech_commands.PROTOCOLS:
            raise ConfigError(
                f"DataConfig: protocol must be one of {list(speech_commands.PROTOCOLS)}, got {self.protocol!r}"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"DataConfig: batch_size must be a positive integer, got {self.batch_size!r}")

        share = self.train_unknown_share
        if share is not None and not (isinstance(share, (int, float)) and 0 < share < math.inf):
            raise ConfigError(f"DataConfig: train_unknown_share must be a positive number or None, got {share!r}")
        run_ons = self.train_run_on_share
        if not (isinstance(run_ons, (int, float)) and 0 <= run_ons < math.inf):
            raise ConfigError(f"DataConfig: train_run_on_share must be a number >= 0, got {run_ons!r}")
        if run_ons and share is None:
            raise ConfigError(
                "DataConfig: train_run_on_share needs train_unknown_share: run-ons join the "
                "non-keyword clips each epoch draws from"
            )
        if run_ons and UNKNOWN not in TASKS[self.task][1]:
            raise ConfigError(f"DataConfig: task {self.task} has no {UNKNOWN!r} class for run-ons to join")

    @property
    def version(self) -> str:
        return TASKS[self.task][0]


@dataclasses.dataclass(frozen=True)
class SplitAudio:
    """A split's decoded clips and labels.

    Attributes:
        clips: ``(C, S)`` int16 file clips (maybe memory-mapped), zero-padded to ``S`` samples.
        synthesized: ``(M, S)`` int16 clips made by the protocol: all-zero silence, noise crops.
        lengths: ``(C + M,)`` int32 true length of each row of ``clips`` then ``synthesized``.
        sources: ``(E,)`` int32 row of each example in ``clips`` then ``synthesized``.
        labels: ``(E,)`` int32 label of each example.
    """

    clips: np.ndarray
    synthesized: np.ndarray
    lengths: np.ndarray
    sources: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def pcm(self, rows: np.ndarray) -> np.ndarray:
        """``(B, S)`` int16 clips of the given rows (of ``clips`` then ``synthesized``)."""
        out = np.empty((len(rows), self.clips.shape[1]), dtype=np.int16)
        from_files = rows < len(self.clips)
        out[from_files] = self.clips[rows[from_files]]
        out[~from_files] = self.synthesized[rows[~from_files] - len(self.clips)]
        return out


def split_root(data_config: DataConfig, split: str) -> Path:
    """The dataset root that ``split`` is read from."""
    if split == "official_test":
        return speech_commands.find_dataset(data_config.version, data_config.data_dir, test_set=True)
    if data_config.root is not None:
        root = Path(data_config.root).expanduser()
        speech_commands.check_layout(root)
        return root
    return speech_commands.find_dataset(data_config.version, data_config.data_dir)


def load_split(
    data_config: DataConfig, feature_config: FeatureConfig, split: str, *, training: bool = False
) -> SplitAudio:
    """Decode (or load from the cache) ``split`` and label it for the task and protocol; for
    ``training`` on the ``train`` split, with the run-ons ``data_config`` asks for."""
    root = split_root(data_config, split)
    rate, clip_samples = feature_config.sample_rate, feature_config.clip_samples
    examples = speech_commands.examples(
        root,
        data_config.task,
        split,
        data_config.protocol,
        sample_rate=rate,
        resample=data_config.resample,
        # Every non-keyword, for make_dataset's per-epoch draws.
        unknown_share=(
            math.inf
            if split == "train" and data_config.train_unknown_share is not None
            else speech_commands.UNKNOWN_SHARE
        ),
    )
    if not examples:
        raise speech_commands.DatasetError(f"{root}: the {split} split has no clips")
    files = sorted({e.path for e in examples if e.path is not None})
    cache_dir = None
    if data_config.cache_audio:
        cache_dir = speech_commands.resolve_data_dir(data_config.data_dir) / "cache" / "audio"
    clips, clip_lengths = _decoded_clips(root, files, split, rate, clip_samples, data_config.resample, cache_dir)
    row_of_file = {name: row for row, name in enumerate(files)}
    noise = _noise_arrays(root, {e.noise_path for e in examples if e.noise_path}, rate, data_config.resample)
    synthesized = [np.zeros(clip_samples, np.int16)]  # row len(files): all-zero silence
    sources = np.empty(len(examples), dtype=np.int32)
    for i, e in enumerate(examples):
        if e.path is not None:
            sources[i] = row_of_file[e.path]
        elif e.noise_path is None:
            sources[i] = len(files)
        else:
            sources[i] = len(files) + len(synthesized)
            crop = noise[e.noise_path][e.noise_offset : e.noise_offset + clip_samples]
            synthesized.append(_to_pcm(crop * e.noise_gain))
    labels = np.array([e.label for e in examples], dtype=np.int32)
    if training and split == "train" and data_config.train_run_on_share:
        unknown = TASKS[data_config.task][1].index(UNKNOWN)
        rows = np.unique(sources[(labels == unknown) & (sources < len(files))])
        if len(rows) < 2:
            raise speech_commands.DatasetError(
                f"{root}: run-ons are made of the training split's non-keyword clips, and it has "
                f"{len(rows)}; set train_run_on_share to 0"
            )
        count = round(data_config.train_run_on_share * len(rows))
        rng = np.random.default_rng([data_config.seed, _RUN_ON_STREAM])
        windows = run_on_clips(clips, clip_lengths, rows, count, rate, rng)
        sources = np.concatenate([sources, len(files) + len(synthesized) + np.arange(count, dtype=np.int32)])
        synthesized.extend(_to_pcm(windows))
        labels = np.concatenate([labels, np.full(count, unknown, np.int32)])
    return SplitAudio(
        clips=clips,
        synthesized=np.stack(synthesized),
        lengths=np.concatenate([clip_lengths, np.full(len(synthesized), clip_samples, np.int32)]),
        sources=sources,
        labels=labels,
    )


def split_waveforms(
    data_config: DataConfig, feature_config: FeatureConfig, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(waveforms (E, S) float32 in [-1, 1], labels (E,) int32)`` of ``split``, unaugmented.

    The same examples, in the same order, as ``make_dataset(..., training=False)``; for
    evaluation and conversion code that works on NumPy arrays.
    """
    data = load_split(data_config, feature_config, split)
    return data.pcm(data.sources).astype(np.float32) / _PCM_SCALE, data.labels


def unseen_word_waveforms(data_config: DataConfig, feature_config: FeatureConfig) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(waveforms (N, S) float32 in [-1, 1], words (N,))`` of the dataset's clips of words no
    model was trained on (``_unseen_words_/<word>/*.wav`` of a synthetic set made with
    ``unseen_words_per_speaker``, said by test speakers), sorted by path; empty without them.
    Unaugmented, cut or zero-padded to the clip length as :func:`make_dataset`'s clips are."""
    root = split_root(data_config, "test")
    files = sorted(str(p.relative_to(root)) for p in (root / speech_commands.UNSEEN_WORDS_DIR).glob("*/*.wav"))
    clips, _ = _decoded_clips(
        root,
        files,
        "unseen-words",
        feature_config.sample_rate,
        feature_config.clip_samples,
        data_config.resample,
        cache_dir=None,
    )
    return clips.astype(np.float32) / _PCM_SCALE, tuple(PurePosixPath(f).parent.name for f in files)


def make_dataset(
    data_config: DataConfig,
    feature_config: FeatureConfig,
    split: str,
    training: bool = False,
    *,
    first_epoch: int = 0,
) -> tf.data.Dataset:
    """Batches of ``(features (B, T, F) float32, labels (B,) int32)`` of ``split``.

    ``split`` is ``train``, ``validation``, ``test`` or ``official_test`` (the separate test-set
    archive, downloaded with ``--test-set``). Labels index ``task_labels(data_config.task)``.
    Without ``training``: every example once, in a fixed order, unaugmented. With ``training``:
    each pass over the returned dataset is one epoch
    (``first_epoch``, then the next, ...), shuffled and augmented by stateless ops keyed by
    ``(data_config.seed, epoch, clip)``; ``model.fit(dataset, epochs=n)`` sees a fresh epoch each
    time, as does one iterator of ``dataset.repeat()`` (how training reads it), and a run resumed
    at epoch ``k`` passes ``first_epoch=k`` to continue the same stream.
    """
    data = load_split(data_config, feature_config, split, training=training)
    frontend = build_frontend(feature_config)
    clip_samples = feature_config.clip_samples
    sources = tf.constant(data.sources)
    labels = tf.constant(data.labels)
    lengths = tf.constant(data.lengths)

    def waveforms_of(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rows = tf.gather(sources, indices)
        pcm = tf.numpy_function(data.pcm, [rows], tf.int16, stateful=False)
        pcm = tf.ensure_shape(pcm, [None, clip_samples])
        return tf.cast(pcm, tf.float32) / _PCM_SCALE, tf.gather(lengths, rows)

    if not training:
        dataset = tf.data.Dataset.range(len(data)).batch(data_config.batch_size)
        dataset = dataset.map(
            lambda indices: (frontend(waveforms_of(indices)[0]), tf.gather(labels, indices)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        # Validation passes over the same features every epoch; they are small (a V2 split's
        # are tens of MB), so they are computed once.
        return dataset.cache().prefetch(tf.data.AUTOTUNE)

    augment = data_config.augment
    noise = None
    if augment.uses_noise:
        noise = _noise_bank(split_root(data_config, split), data_config, feature_config)
    num_examples = len(data)
    always, pool, drawn = _epoch_composition(data, data_config)
    epoch_size = len(always) + drawn

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.random.experimental.stateless_fold_in(tf.constant([data_config.seed, 0], tf.int64), epoch)
        members = tf.constant(always, tf.int64)
        if drawn:
            picked = tf.argsort(
                tf.random.stateless_uniform([len(pool)], tf.random.experimental.stateless_fold_in(key, 2))
            )[:drawn]
            members = tf.concat([members, tf.gather(tf.constant(pool, tf.int64), picked)], 0)
        order = tf.gather(
            members,
            tf.argsort(tf.random.stateless_uniform([epoch_size], tf.random.experimental.stateless_fold_in(key, 0))),
        )
        draws = tf.random.stateless_uniform([num_examples, NUM_DRAWS], tf.random.experimental.stateless_fold_in(key, 1))
        return tf.data.Dataset.from_tensor_slices((order, tf.gather(draws, order))).batch(data_config.batch_size)

    def augmented_features(indices: tf.Tensor, draws: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        waveforms, clip_lengths = waveforms_of(indices)
        waveforms = augment_batch(waveforms, clip_lengths, draws, augment, noise)
        return frontend(waveforms), tf.gather(labels, indices)

    batches = math.ceil(epoch_size / data_config.batch_size)
    dataset = _epoch_numbers(first_epoch).flat_map(one_epoch)
    dataset = dataset.map(augmented_features, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _epoch_composition(data: SplitAudio, data_config: DataConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """``(always, pool, drawn)``: the examples in every epoch, and ``drawn`` more drawn from
    ``pool`` each epoch (``DataConfig.train_unknown_share``)."""
    everything = np.arange(len(data))
    labels = TASKS[data_config.task][1]
    share = data_config.train_unknown_share
    if share is None or UNKNOWN not in labels:
        return everything, everything[:0], 0
    unknown = data.labels == labels.index(UNKNOWN)
    keywords = int(np.sum(~unknown & (data.labels != labels.index(SILENCE))))
    pool = everything[unknown]
    return everything[~unknown], pool, min(len(pool), round(share * keywords))


def _epoch_numbers(first_epoch: int) -> tf.data.Dataset:
    """One element: ``first_epoch`` on the first pass over the dataset, then +1 per pass."""
    counter = itertools.count(first_epoch)
    return tf.data.Dataset.from_generator(lambda: iter((next(counter),)), output_signature=tf.TensorSpec([], tf.int64))


def _to_pcm(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * _PCM_SCALE), -32768, 32767).astype(np.int16)


def _noise_arrays(root: Path, names: set[str], sample_rate: int, resample: bool) -> dict[str, np.ndarray]:
    return {name: speech_commands.read_clip(root / name, sample_rate, resample=resample) for name in sorted(names)}


def _noise_bank(root: Path, data_config: DataConfig, feature_config: FeatureConfig) -> NoiseBank:
    names = speech_commands.noise_files(root)
    if not names:
        raise speech_commands.DatasetError(
            f"{root / speech_commands.BACKGROUND_NOISE_DIR}: no background-noise .wav files, which "
            "training augmentation mixes in; add them or set augment.noise_prob=0"
        )
    arrays = _noise_arrays(root, set(names), feature_config.sample_rate, data_config.resample)
    named = {str(root / name): samples for name, samples in arrays.items()}
    return NoiseBank.from_arrays(named, feature_config.clip_samples)


def _decoded_clips(
    root: Path,
    files: list[str],
    split: str,
    sample_rate: int,
    clip_samples: int,
    resample: bool,
    cache_dir: Path | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(clips (C, S) int16, lengths (C,) int32)`` of ``files``, from the cache when valid."""
    root_tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    content = hashlib.sha256(repr((_CACHE_FORMAT, sample_rate, clip_samples, resample)).encode())
    for name in files:
        try:
            status = (root / name).stat()
        except OSError as err:  # a dangling or looping symlink
            raise speech_commands.bad_clip(root / name, f"cannot read it ({err.strerror})") from None
        if not stat.S_ISREG(status.st_mode):  # reading a FIFO would wait forever
            raise speech_commands.bad_clip(root / name, "not a regular file")
        content.update(f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    prefix = f"{split}-{root_tag}-"
    stem = prefix + content.hexdigest()[:16]
    if cache_dir is not None:
        clips_path = cache_dir / f"{stem}.clips.npy"
        lengths_path = cache_dir / f"{stem}.lengths.npy"
        if clips_path.is_file() and lengths_path.is_file():
            with contextlib.suppress(ValueError, OSError):  # damaged from outside: decode again
                return np.load(clips_path, mmap_mode="r"), np.load(lengths_path)
        _remove_stale(cache_dir, prefix)

    def decode(name: str) -> np.ndarray:
        return speech_commands.read_clip(root / name, sample_rate, resample=resample)[:clip_samples]

    from tqdm import tqdm

    lengths = np.empty(len(files), dtype=np.int32)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        decoded = tqdm(
            pool.map(decode, files),
            total=len(files),
            desc=f"decode {split}",
            unit="clip",
            disable=None,
        )
        if cache_dir is None:
            clips = np.zeros((len(files), clip_samples), dtype=np.int16)
            _fill(clips, lengths, decoded)
            return clips, lengths
        try:
            # The lock tells _remove_stale that the temporary file's writer lives; it is held
            # past the rename, so that no other process can take the file from under it.
            with contextlib.ExitStack() as locked:
                with atomic_path(clips_path) as tmp:
                    held = locked.enter_context(open(tmp, "r+b"))
                    fcntl.flock(held, fcntl.LOCK_EX)
                    clips = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(len(files), clip_samples))
                    # Every block now: a full disk is an OSError here, not a SIGBUS in _fill.
                    os.posix_fallocate(held.fileno(), 0, tmp.stat().st_size)
                    _fill(clips, lengths, decoded)
                    clips.flush()
                    del clips
            with atomic_path(lengths_path) as tmp:
                np.save(tmp, lengths)
        except OSError as err:
            size = len(files) * clip_samples * 2 / 1e6
            raise speech_commands.DatasetError(
                f"{cache_dir}: cannot write the decoded audio of the {split} split there "
                f"({size:.0f} MB; {err.strerror or err}); make room, or set "
                f"${speech_commands.DATA_DIR_ENV} to a directory with room"
            ) from None
    return np.load(clips_path, mmap_mode="r"), lengths


def _remove_stale(cache_dir: Path, prefix: str) -> None:
    """Remove the cache files of ``prefix`` (a split of a root) made from another state of the
    dataset, and the temporary ones of writers that were killed."""
    for stale in cache_dir.glob(f"{prefix}*.npy"):
        stale.unlink(missing_ok=True)
    for tmp in cache_dir.glob(f".{prefix}*.clips.*.tmp.npy"):
        with contextlib.suppress(FileNotFoundError), open(tmp, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another process is writing it
            tmp.unlink()


def _fill(clips: np.ndarray, lengths: np.ndarray, decoded) -> None:
    for row, samples in enumerate(decoded):
        clips[row, : len(samples)] = _to_pcm(samples)
        lengths[row] = len(samples)
