"""``benchmarks/synth_transfer.py``: which clips a fold trains and scores on, on a real small set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BENCHMARKS_DIR, SMALL_SYNTH, load_script

from bifsmn_tf.data.labels import UNKNOWN, WORDS
from bifsmn_tf.data.synthetic import SYNTH_JSON, generate
from bifsmn_tf.data.synthetic.vocabulary import TRAINING_NEGATIVES
from bifsmn_tf.features import FeatureConfig, build_frontend


@pytest.fixture(scope="module")
def script():
    return load_script(BENCHMARKS_DIR / "synth_transfer.py")


def test_a_held_out_engine_is_scored_on_the_sets_own_words_with_or_without_other_words(script, tmp_path):
    """With ``--negatives-per-speaker`` the training speakers of every engine say other words too:
    they train as `unknown`, and a held-out engine's score leaves them out, so that it is the same
    test as on the set without them."""
    root = generate(tmp_path / "set", SMALL_SYNTH.replace(negatives_per_speaker=2), jobs=1, progress=False).root
    data = script.ClipFeatures(root, build_frontend(FeatureConfig()))
    clips = json.loads((root / SYNTH_JSON).read_text())["clips"]
    paths = sorted(clips)
    words = np.array([p.split("/")[0] for p in paths])
    assert len(data.labels) == len(data.features) == len(paths)
    training_speakers = {r["speaker"] for r in clips.values() if r["split"] == "training"}
    assert data.negative.sum() == 2 * len(training_speakers) > 0
    assert set(words[data.negative]) <= set(TRAINING_NEGATIVES)
    assert set(data.split[data.negative]) == {"training"}
    assert set(data.labels[data.negative]) == {script.LABELS.index(UNKNOWN)}
    for engine in SMALL_SYNTH.engines:
        held = data.held_out_clips(engine)
        assert set(data.engine[held]) == {engine}
        assert sorted(words[held]) == sorted(w for w, e in zip(words, data.engine) if e == engine and w in WORDS["v1"])
        assert held.sum() == (data.engine == engine).sum() - (data.negative & (data.engine == engine)).sum()


@pytest.mark.parametrize("unknown_weight", [1.0, 5.0])
def test_every_class_weighs_the_same_in_all_but_unknown(script, unknown_weight):
    labels = script.LABELS
    y = np.array([labels.index(UNKNOWN)] * 6 + [labels.index("yes")] * 2 + [labels.index("no")] * 3)
    weights = script.class_weights(y, unknown_weight)
    totals = {c: weights[labels.index(c)] * (y == labels.index(c)).sum() for c in (UNKNOWN, "yes", "no")}
    assert totals["yes"] == pytest.approx(totals["no"])
    assert totals[UNKNOWN] == pytest.approx(unknown_weight * totals["yes"])
