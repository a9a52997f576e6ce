"""``benchmarks/threshold_spread.py``: the spread of a threshold chosen on some speakers, on hand-made
score tables (the scores of a run are the evaluation's, tested in test_evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BENCHMARKS_DIR, load_script

from bifsmn_tf.data.labels import UNKNOWN, task_labels

NAMES = list(task_labels("v1-12"))
YES, UNKNOWN_CLASS = NAMES.index("yes"), NAMES.index(UNKNOWN)


@pytest.fixture(scope="module")
def script():
    return load_script(BENCHMARKS_DIR / "threshold_spread.py")


def _speaker(name: str, non_keyword: list[float], keyword: list[float]) -> dict:
    """One speaker's clips: non-keywords and clips of ``yes``, each scored ``p`` for ``yes``."""
    posteriors = [*non_keyword, *keyword]
    scores = np.zeros((len(posteriors), len(NAMES)))
    scores[:, YES] = posteriors
    scores[:, UNKNOWN_CLASS] = 1 - np.array(posteriors)
    labels = np.array([UNKNOWN_CLASS] * len(non_keyword) + [YES] * len(keyword))
    return {"scores": scores, "labels": labels, "speakers": np.array([name] * len(posteriors))}


def _split(*speakers: dict) -> dict:
    return {
        "labels": np.concatenate([s["labels"] for s in speakers]),
        "speakers": np.concatenate([s["speakers"] for s in speakers]),
        "scores": {8: np.concatenate([s["scores"] for s in speakers])},
    }


def test_speakers_alike_choose_the_same_threshold_everywhere(script):
    # For 20 % FAR a threshold may take 2 of each speaker's 10 non-keywords (0.85 and 0.95): the
    # lowest score above 0.75 is a keyword's 0.8, which misses the 3 keywords below it; for
    # 10 %, 0.9 misses 4.
    non_keyword = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    keyword = [0.3, 0.5, 0.7, 0.8, 0.9, 0.96, 0.97, 0.98, 0.99, 0.995]
    speakers = [_speaker(f"s{i}", non_keyword, keyword) for i in range(5)]
    splits = {"validation": _split(*speakers[:2]), "test": _split(*speakers)}
    result = script.spread(NAMES, splits, 0.2, [0.1, 0.2], [1, 3], draws=20, seed=0)["8"]
    assert result["validation_to_test"] == {"threshold": 0.8, "far": pytest.approx(0.2), "frr": pytest.approx(0.3)}
    assert result["test_curve_frr"] == {"0.1": pytest.approx(0.4), "0.2": pytest.approx(0.3)}
    for n, row in result["resampled"].items():
        assert row["evaluated_speakers"] == 5 - int(n)
        assert (row["far_mean"], row["far_sd"], row["far_p5"], row["far_p95"]) == pytest.approx((0.2, 0, 0.2, 0.2))
        assert (row["frr_mean"], row["frr_sd"], row["met"]) == pytest.approx((0.3, 0, 0.0))
        assert row["argmax_met"] == 0.0
    # Argmax takes `yes` above 0.5 (at 0.5 the tie goes to `unknown`, the first class): 5 of 10
    # non-keywords, and misses the keywords at 0.3 and 0.5.
    assert result["argmax_test"] == {"far": pytest.approx(0.5), "frr": pytest.approx(0.2)}


def test_a_threshold_chosen_on_other_speakers_lands_where_they_differ(script):
    # Speaker "hard" puts non-keywords high, "easy" low; keywords at 0.9 for both. Chosen on
    # "hard" for 50 % FAR: 0.8, which takes none of easy's non-keywords and every keyword.
    # Chosen on "easy": 0.3, which takes all of hard's.
    hard = _speaker("hard", [0.6, 0.7, 0.8, 0.85], [0.9, 0.9])
    easy = _speaker("easy", [0.1, 0.2, 0.3, 0.4], [0.9, 0.9])
    splits = {"validation": _split(hard), "test": _split(hard, easy)}
    result = script.spread(NAMES, splits, 0.5, [0.5], [1], draws=200, seed=1)["8"]
    assert result["validation_to_test"] == {"threshold": pytest.approx(0.8), "far": 0.25, "frr": 0.0}
    row = result["resampled"]["1"]
    # Calibrated on hard: FAR 0 on easy; on easy (threshold 0.3): FAR 1 on hard.
    assert row["far_p5"] == 0.0 and row["far_p95"] == 1.0
    assert 0.3 < row["far_mean"] < 0.7 and row["far_sd"] == pytest.approx(
        np.sqrt(row["far_mean"] * (1 - row["far_mean"]))
    )
    assert row["met"] == pytest.approx(1 - row["far_mean"])  # met exactly when calibrated on hard
    # Argmax accepts all of hard's non-keywords and none of easy's: met exactly when easy is the
    # speaker evaluated, the same draws.
    assert result["argmax_test"] == {"far": 0.5, "frr": 0.0}
    assert row["argmax_met"] == pytest.approx(row["met"]) and 0 < row["argmax_met"] < 1


def test_the_table_and_json_say_the_same(script, tmp_path):
    speakers = [_speaker(f"s{i}", [0.1, 0.5, 0.9], [0.6, 0.95]) for i in range(3)]
    splits = {"validation": _split(speakers[0]), "test": _split(*speakers)}
    settings = {"far_target": 0.4, "far_levels": [0.4], "calibration_speakers": [1], "draws": 5, "seed": 0}
    result = script.spread(NAMES, splits, 0.4, [0.4], [1], draws=5, seed=0)
    out = tmp_path / "spread.md"
    script.write(out, tmp_path / "student", settings, result, {"validation": 5, "test": 15})
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["widths"] == json.loads(json.dumps(result)) and record["settings"] == settings
    row = next(line for line in out.read_text().splitlines() if line.startswith("| 8 |"))
    far, frr = result["8"]["validation_to_test"]["far"], result["8"]["validation_to_test"]["frr"]
    assert f"{100 * far:.2f} %, {100 * frr:.1f} %" in row
    argmax, met = result["8"]["argmax_test"], result["8"]["resampled"]["1"]["argmax_met"]
    assert row.endswith(f"| {100 * argmax['far']:.2f} %, {100 * argmax['frr']:.1f} %; N=1: {100 * met:.0f} % |")
