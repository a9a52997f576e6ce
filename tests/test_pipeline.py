"""download -> verify -> extract -> split -> tf.data; labels, seeded training, cache, bad input."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from speech_commands_tree import (
    ArchiveServer,
    make_archive,
    make_test_set_tree,
    make_tree,
    word_frequency,
)

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.config import ConfigError
from bifsmn_tf.data import speech_commands
from bifsmn_tf.data.archives import archive_url, download
from bifsmn_tf.data.audio import AudioFormatError
from bifsmn_tf.data.augment import AugmentConfig
from bifsmn_tf.data.labels import SILENCE, UNKNOWN, WORDS, task_labels
from bifsmn_tf.data.pipeline import DataConfig, load_split, make_dataset, split_waveforms
from bifsmn_tf.features import FeatureConfig, build_frontend

FEATURES = FeatureConfig()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Both versions and the V2 official test set, fetched from a local HTTP server."""
    trees = tmp_path_factory.mktemp("trees")
    archives = {
        "speech_commands_v0.01.tar.gz": make_tree(trees / "v1", "v1"),
        "speech_commands_v0.02.tar.gz": make_tree(trees / "v2", "v2"),
        "speech_commands_test_set_v0.02.tar.gz": make_test_set_tree(trees / "test_set"),
    }
    data = tmp_path_factory.mktemp("data")
    with ArchiveServer() as server:
        for name, tree in archives.items():
            server.files[name] = make_archive(tree, trees / name).read_bytes()
        base = server.url("")
        for version, test_set in (("v1", False), ("v2", False), ("v2", True)):
            url = archive_url(version, test_set=test_set, base_url=base)
            download(version, data, source=url, test_set=test_set)
    return data


def _word_of_tone(clip: np.ndarray) -> str:
    spectrum = np.abs(np.fft.rfft(clip))
    hz = np.argmax(spectrum) * 16000 / len(clip)
    return min(WORDS["v2"], key=lambda w: abs(word_frequency(w) - hz))


def _words_of_tones(clip: np.ndarray) -> set[str]:
    """Every word whose tone carries a hundredth of the loudest tone's energy or more."""
    spectrum = np.abs(np.fft.rfft(clip))
    bin_of = {w: round(word_frequency(w) * len(clip) / 16000) for w in WORDS["v2"]}
    return {w for w, b in bin_of.items() if spectrum[b - 1 : b + 2].max() > 0.1 * spectrum.max()}


@pytest.mark.parametrize("protocol", speech_commands.PROTOCOLS)
@pytest.mark.parametrize("task", ["v1-12", "v2-12", "v2-35"])
def test_batches_are_labelled_by_their_audio(data_dir, task, protocol):
    config = DataConfig(task=task, protocol=protocol, data_dir=str(data_dir), batch_size=16)
    labels = task_labels(task)
    waveforms, expected = split_waveforms(config, FEATURES, "validation")
    assert waveforms.shape == (len(expected), 16000) and waveforms.dtype == np.float32
    for clip, label in zip(waveforms, expected, strict=True):
        if labels[label] == SILENCE:
            if protocol == "bifsmn":
                assert not clip.any(), "bifsmn silence is all zeros"
            else:
                assert np.std(clip) > 1e-3, "standard silence is background noise"
        else:
            word = _word_of_tone(clip)
            assert labels[label] == (word if word in labels else UNKNOWN)

    dataset = make_dataset(config, FEATURES, "validation")
    features, batch_labels = zip(*dataset.as_numpy_iterator(), strict=True)
    assert all(f.shape[1:] == (32, 32) and f.dtype == np.float32 for f in features)
    assert batch_labels[0].dtype == np.int32
    np.testing.assert_array_equal(np.concatenate(batch_labels), expected)
    frontend = build_frontend(FEATURES)
    np.testing.assert_allclose(np.concatenate(features), frontend(waveforms).numpy(), rtol=1e-5, atol=1e-3)


def test_official_test_split(data_dir):
    config = DataConfig(task="v2-12", data_dir=str(data_dir), batch_size=8)
    labels = [task_labels("v2-12")[i] for i in split_waveforms(config, FEATURES, "official_test")[1]]
    assert Counter(labels) == dict.fromkeys(task_labels("v2-12"), 2)
    batches = list(make_dataset(config, FEATURES, "official_test").as_numpy_iterator())
    assert sum(len(b[1]) for b in batches) == 24


def _epoch(dataset):
    features, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.concatenate(features), np.concatenate(labels)


def test_training_stream_is_seeded_per_epoch(data_dir):
    config = DataConfig(task="v2-12", data_dir=str(data_dir), batch_size=16, seed=7)
    expected_labels = split_waveforms(config, FEATURES, "train")[1]
    stream = make_dataset(config, FEATURES, "train", training=True)
    assert stream.cardinality().numpy() == -(-len(expected_labels) // 16)
    first, second = _epoch(stream), _epoch(stream)
    for _, labels in (first, second):
        assert sorted(labels) == sorted(expected_labels), "each epoch has every example once"
    assert not np.array_equal(first[1], second[1]), "a new epoch is a new order"

    replay = make_dataset(config, FEATURES, "train", training=True)
    np.testing.assert_array_equal(_epoch(replay)[0], first[0])
    resumed = make_dataset(config, FEATURES, "train", training=True, first_epoch=1)
    np.testing.assert_array_equal(_epoch(resumed)[0], second[0])
    other_seed = make_dataset(config.replace(seed=8), FEATURES, "train", training=True)
    assert not np.array_equal(_epoch(other_seed)[1], first[1])
    # Training reads its epochs through one iterator of the repeated stream (run.train): the same
    # epochs, one after the other.
    batches = int(stream.cardinality())
    continuous = make_dataset(config, FEATURES, "train", training=True).repeat().take(2 * batches)
    both = _epoch(continuous)[0]
    np.testing.assert_array_equal(both, np.concatenate([first[0], second[0]]))


@pytest.mark.parametrize("protocol", speech_commands.PROTOCOLS)
def test_unknowns_are_drawn_afresh_each_epoch(data_dir, protocol):
    config = DataConfig(
        task="v2-12",
        protocol=protocol,
        data_dir=str(data_dir),
        batch_size=8,
        augment=AugmentConfig(enabled=False),
        train_unknown_share=0.5,
    )
    labels = task_labels("v2-12")
    unknown = labels.index(UNKNOWN)
    every = speech_commands.examples(
        speech_commands.find_dataset("v2", str(data_dir)),
        "v2-12",
        "train",
        protocol,
        unknown_share=np.inf,
    )
    n_keywords = sum(labels[e.label] not in (UNKNOWN, SILENCE) for e in every)
    n_others = sum(e.label != unknown for e in every)
    drawn = round(0.5 * n_keywords)
    assert drawn < sum(e.label == unknown for e in every), "the tree must have more to draw from"
    stream = make_dataset(config, FEATURES, "train", training=True)
    assert stream.cardinality().numpy() == -(-(n_others + drawn) // 8)
    heard = []
    for _ in range(3):
        features, epoch_labels = _epoch(stream)
        assert len(epoch_labels) == n_others + drawn and np.sum(epoch_labels == unknown) == drawn
        heard.append({float(f.sum()) for f, y in zip(features, epoch_labels, strict=True) if y == unknown})
    assert heard[0] != heard[1] or heard[1] != heard[2], "each epoch draws its own unknown clips"
    resumed = make_dataset(config, FEATURES, "train", training=True, first_epoch=2)
    features, epoch_labels = _epoch(resumed)
    assert {float(f.sum()) for f, y in zip(features, epoch_labels, strict=True) if y == unknown} == heard[2]

    evaluation = split_waveforms(config, FEATURES, "validation")[1]
    assert np.array_equal(
        evaluation, split_waveforms(config.replace(train_unknown_share=None), FEATURES, "validation")[1]
    )


def test_run_ons_join_the_unknown_clips_of_training_only(data_dir):
    config = DataConfig(
        task="v1-12",
        protocol="standard",
        data_dir=str(data_dir),
        batch_size=8,
        augment=AugmentConfig(enabled=False),
        train_unknown_share=0.5,
    )
    labels = task_labels("v1-12")
    unknown = labels.index(UNKNOWN)
    plain = load_split(config, FEATURES, "train")
    with_run_ons = load_split(config.replace(train_run_on_share=0.5), FEATURES, "train", training=True)
    words = int(np.sum(plain.labels == unknown))
    added = len(with_run_ons) - len(plain)
    assert added == round(0.5 * words) and added > 0
    assert np.array_equal(with_run_ons.labels[: len(plain)], plain.labels)
    assert np.all(with_run_ons.labels[len(plain) :] == unknown)
    windows = with_run_ons.pcm(with_run_ons.sources[len(plain) :]).astype(np.float32) / 32768
    # The tree's clips are tones, one per word: a run-on holds non-keyword words only (what else
    # it holds: tests/test_run_ons.py; these clips leave little room around their words).
    heard = set().union(*(_words_of_tones(w) for w in windows))
    assert heard and not heard & set(labels)
    np.testing.assert_array_equal(
        windows,
        load_split(config.replace(train_run_on_share=0.5), FEATURES, "train", training=True)
        .pcm(with_run_ons.sources[len(plain) :])
        .astype(np.float32)
        / 32768,
    )
    # The epochs draw them with the words: same epoch size, the pool larger.
    stream = make_dataset(config.replace(train_run_on_share=0.5), FEATURES, "train", training=True)
    assert stream.cardinality().numpy() == make_dataset(config, FEATURES, "train", training=True).cardinality().numpy()
    validation = load_split(config.replace(train_run_on_share=0.5), FEATURES, "validation", training=True)
    assert np.array_equal(validation.labels, load_split(config, FEATURES, "validation").labels)
    # Evaluating the training split scores its clips, not the windows made to train on.
    assert np.array_equal(split_waveforms(config.replace(train_run_on_share=0.5), FEATURES, "train")[1], plain.labels)


def test_run_ons_need_two_non_keyword_clips_to_make_them(tmp_path):
    root = make_tree(tmp_path / "v1", "v1")
    # Clips 2 and 3 of each word are its training clips: one non-keyword clip is left.
    training = sorted(
        p for w in set(WORDS["v1"]) - set(task_labels("v1-12")) for p in (root / w).glob("*_nohash_[23].wav")
    )
    for path in training[1:]:
        path.unlink()
    config = DataConfig(
        task="v1-12",
        protocol="standard",
        root=str(root),
        cache_audio=False,
        train_unknown_share=0.5,
        train_run_on_share=1,
    )
    with pytest.raises(speech_commands.DatasetError, match="run-ons .* it has 1; set train_run_on_share to 0"):
        load_split(config, FEATURES, "train", training=True)
    assert len(load_split(config.replace(train_run_on_share=0), FEATURES, "train", training=True))


def test_augmentation_only_in_training(data_dir):
    config = DataConfig(task="v2-35", data_dir=str(data_dir), batch_size=32)
    plain_features, plain_labels = _epoch(make_dataset(config, FEATURES, "train"))
    assert np.array_equal(plain_features, _epoch(make_dataset(config, FEATURES, "train"))[0])

    def by_clip(features, labels):
        # v2-35 train has two clips per word, told apart by their (distinct) lengths
        return {(int(y), float(f[-1].sum())): f for f, y in zip(features, labels, strict=True)}

    unaugmented = config.replace(augment=AugmentConfig(enabled=False))
    shuffled = by_clip(*_epoch(make_dataset(unaugmented, FEATURES, "train", training=True)))
    plain = by_clip(plain_features, plain_labels)
    assert shuffled.keys() == plain.keys()
    for key, features in plain.items():
        np.testing.assert_array_equal(shuffled[key], features)

    augmented_features, _ = _epoch(make_dataset(config, FEATURES, "train", training=True))
    augmented = {float(f[-1].sum()) for f in augmented_features}
    assert len(augmented - {float(f[-1].sum()) for f in plain_features}) > len(plain) // 4


def test_decoded_audio_is_cached_and_invalidated(tmp_path, data_dir, monkeypatch):
    root = shutil.copytree(data_dir / "speech_commands_v0.02", tmp_path / "root", symlinks=True)
    config = DataConfig(task="v2-12", data_dir=str(tmp_path / "data"), root=str(root))
    cache = tmp_path / "data" / "cache" / "audio"
    waveforms, labels = split_waveforms(config, FEATURES, "test")
    written = sorted(cache.glob("test-*.npy"))
    assert [p.name.rsplit(".", 2)[1] for p in written] == ["clips", "lengths"]
    stamps = [p.stat().st_mtime_ns for p in written]

    def no_decoding(path, *args, **kwargs):
        raise AssertionError(f"decoded {path} although it is cached")

    with monkeypatch.context() as patch:
        patch.setattr(speech_commands, "read_audio", no_decoding)
        cached_waveforms, cached_labels = split_waveforms(config, FEATURES, "test")
    np.testing.assert_array_equal(cached_waveforms, waveforms)
    np.testing.assert_array_equal(cached_labels, labels)
    assert [p.stat().st_mtime_ns for p in written] == stamps

    changed = (root / speech_commands.TESTING_LIST).read_text().split()[0]
    sf.write(root / changed, np.full(8000, 0.25, np.float32), 16000, subtype="PCM_16")
    refreshed, _ = split_waveforms(config, FEATURES, "test")
    row = sorted((root / speech_commands.TESTING_LIST).read_text().split()).index(changed)
    np.testing.assert_allclose(refreshed[row, :8000], 0.25, atol=1 / 32768)
    assert not refreshed[row, 8000:].any()
    assert len(list(cache.glob("test-*.npy"))) == 2 and not set(written) & set(cache.glob("*.npy"))

    split_waveforms(config.replace(cache_audio=False, data_dir=str(tmp_path / "d2")), FEATURES, "test")
    assert not (tmp_path / "d2").exists()


@pytest.fixture()
def copied_root(tmp_path, data_dir):
    return shutil.copytree(data_dir / "speech_commands_v0.02", tmp_path / "root", symlinks=True)


def test_clip_at_another_rate_is_named_or_resampled(tmp_path, copied_root):
    victim = "yes/0002beef_nohash_2.wav"
    tone = 0.5 * np.sin(2 * np.pi * word_frequency("yes") * np.arange(44100) / 44100)
    sf.write(copied_root / victim, np.stack([tone, tone], 1), 44100, subtype="PCM_16")
    config = DataConfig(task="v2-12", data_dir=str(tmp_path / "data"), root=str(copied_root))
    with pytest.raises(AudioFormatError, match=f"{copied_root / victim}: sample rate is 44100 Hz"):
        make_dataset(config, FEATURES, "train")
    waveforms, labels = split_waveforms(config.replace(resample=True), FEATURES, "train")
    row = speech_commands.split_files(copied_root, "train").index(victim)
    assert _word_of_tone(waveforms[row]) == "yes" and task_labels("v2-12")[labels[row]] == "yes"


def test_truncated_clip_is_named(tmp_path, copied_root):
    victim = copied_root / "no/0003beef_nohash_3.wav"
    victim.write_bytes(victim.read_bytes()[:5000])
    config = DataConfig(task="v2-35", data_dir=str(tmp_path / "data"), root=str(copied_root))
    with pytest.raises(AudioFormatError, match=f"{victim}: truncated WAV"):
        make_dataset(config, FEATURES, "train", training=True)


def test_missing_dataset_or_list_says_what_to_do(tmp_path, copied_root):
    with pytest.raises(speech_commands.DatasetError, match="bifsmn-tf data download --version v1"):
        make_dataset(DataConfig(task="v1-12", data_dir=str(tmp_path)), FEATURES, "test")
    (copied_root / speech_commands.VALIDATION_LIST).unlink()
    config = DataConfig(data_dir=str(tmp_path), root=str(copied_root))
    with pytest.raises(speech_commands.DatasetError, match=f"{copied_root}: no validation_list.txt at its top"):
        make_dataset(config, FEATURES, "train")


def test_missing_background_noise_with_noise_mixing(tmp_path, copied_root):
    shutil.rmtree(copied_root / speech_commands.BACKGROUND_NOISE_DIR)
    config = DataConfig(task="v2-35", data_dir=str(tmp_path), root=str(copied_root))
    with pytest.raises(speech_commands.DatasetError, match="augment.noise_prob=0"):
        make_dataset(config, FEATURES, "train", training=True)
    quiet = config.replace(augment=AugmentConfig(noise_prob=0.0))
    assert make_dataset(quiet, FEATURES, "train", training=True).cardinality() > 0


def test_data_config_round_trip_and_validation(tmp_path):
    config = DataConfig(task="v1-12", protocol="standard", augment=AugmentConfig(noise_prob=0.5))
    assert DataConfig.load(config.save(tmp_path / "data.json")) == config
    for bad in (
        {"task": "v3-12"},
        {"protocol": "kws"},
        {"batch_size": 0},
        {"train_unknown_share": 0.0},
        {"train_unknown_share": float("nan")},
        {"train_unknown_share": float("inf")},
        {"train_unknown_share": 0.5, "train_run_on_share": -0.1},
        {"train_unknown_share": 0.5, "train_run_on_share": float("nan")},
        {"train_run_on_share": 0.5},  # run-ons join the per-epoch draws, which need a share
        {"task": "v2-35", "train_unknown_share": 0.5, "train_run_on_share": 0.5},  # no unknown class
    ):
        with pytest.raises(ConfigError, match="DataConfig"):
            DataConfig(**bad)
