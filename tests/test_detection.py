"""Detection metrics against score tables whose rates are worked out by hand below."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from bifsmn_tf import detection
from bifsmn_tf.data.labels import LABELS_12

NAMES = ("unknown", "silence", "yes", "no")
UNK, SIL, YES, NO = range(4)

#: Table A. Columns: unknown, silence, yes, no. Best keyword and its posterior in the comments.
SCORES_A = np.array(
    [
        [0.10, 0.00, 0.80, 0.10],  # 0 yes clip: yes 0.8
        [0.30, 0.10, 0.40, 0.20],  # 1 yes clip: yes 0.4 (argmax yes)
        [0.20, 0.10, 0.30, 0.40],  # 2 yes clip: no 0.4 (a confusion when accepted)
        [0.10, 0.10, 0.10, 0.70],  # 3 no clip: no 0.7
        [0.55, 0.00, 0.10, 0.35],  # 4 no clip: no 0.35 (argmax unknown)
        [0.50, 0.00, 0.45, 0.05],  # 5 non-keyword: yes 0.45 (argmax unknown)
        [0.20, 0.10, 0.10, 0.60],  # 6 non-keyword: no 0.6 (argmax no)
        [0.90, 0.05, 0.03, 0.02],  # 7 non-keyword: yes 0.03
        [0.00, 0.40, 0.55, 0.05],  # 8 silence: yes 0.55 (argmax yes)
    ]
)
LABELS_A = np.array([YES, YES, YES, NO, NO, UNK, UNK, UNK, SIL])

#: Table B, scored with thresholds chosen on A.
SCORES_B = np.array(
    [
        [0.10, 0.10, 0.75, 0.05],  # 0 yes clip: yes 0.75
        [0.20, 0.10, 0.65, 0.05],  # 1 yes clip: yes 0.65
        [0.10, 0.00, 0.20, 0.70],  # 2 no clip: no 0.7, exactly A's pooled threshold
        [0.10, 0.00, 0.80, 0.10],  # 3 non-keyword: yes 0.8
        [0.30, 0.00, 0.05, 0.65],  # 4 non-keyword: no 0.65
        [0.20, 0.50, 0.30, 0.00],  # 5 silence: yes 0.3
    ]
)
LABELS_B = np.array([YES, YES, NO, UNK, UNK, SIL])


def pooled(record):
    return {key: record["pooled"][key] for key in ("frr", "far", "silence_far", "confusions")}


@pytest.mark.parametrize(
    ("threshold", "expected_pooled", "expected_yes", "expected_no"),
    [
        # Accepted: 0 (yes), 3 (no), 6 (no: false accept), 8 (silence as yes).
        # Rejected: 1, 2 (yes clips), 4 (no clip), 5, 7.
        (
            0.5,
            {"frr": 3 / 5, "far": 1 / 3, "silence_far": 1.0, "confusions": 0},
            {"frr": 2 / 3, "far": 0.0, "false_accepts": 0, "confused_accepts": 0},
            {"frr": 1 / 2, "far": 1 / 3, "false_accepts": 1, "confused_accepts": 0},
        ),
        # Now 1 (yes) and 2 (as no: a false reject of yes and a confused accept of no) are
        # accepted, and 5 as yes; 4 (0.35) and 7 (0.03) still rejected.
        (
            0.4,
            {"frr": 2 / 5, "far": 2 / 3, "silence_far": 1.0, "confusions": 1},
            {"frr": 1 / 3, "far": 1 / 3, "false_accepts": 1, "confused_accepts": 0},
            {"frr": 1 / 2, "far": 1 / 3, "false_accepts": 1, "confused_accepts": 1},
        ),
        # Everything is accepted: only the confused clip 2 is a false reject.
        (
            0.0,
            {"frr": 1 / 5, "far": 1.0, "silence_far": 1.0, "confusions": 1},
            {"frr": 1 / 3, "far": 2 / 3, "false_accepts": 2, "confused_accepts": 0},
            {"frr": 0.0, "far": 1 / 3, "false_accepts": 1, "confused_accepts": 1},
        ),
        # Nothing is accepted.
        (
            0.81,
            {"frr": 1.0, "far": 0.0, "silence_far": 0.0, "confusions": 0},
            {"frr": 1.0, "far": 0.0, "false_accepts": 0, "confused_accepts": 0},
            {"frr": 1.0, "far": 0.0, "false_accepts": 0, "confused_accepts": 0},
        ),
    ],
)
def test_rates_at_a_threshold(threshold, expected_pooled, expected_yes, expected_no):
    decisions = detection.threshold_decisions(SCORES_A, NAMES, threshold)
    record = detection.rates(decisions, LABELS_A, NAMES)
    assert pooled(record) == pytest.approx(expected_pooled)
    for keyword, expected in (("yes", expected_yes), ("no", expected_no)):
        assert {key: record["per_keyword"][keyword][key] for key in expected} == pytest.approx(expected)


def test_argmax_rule():
    # Argmax: 0, 1 yes; 2 no (confusion); 3 no; 4 unknown (false reject); 5, 7 unknown; 6 no; 8 yes.
    decisions = detection.argmax_decisions(SCORES_A, NAMES)
    assert decisions.tolist() == [YES, YES, NO, NO, detection.REJECT, detection.REJECT, NO, detection.REJECT, YES]
    record = detection.rates(decisions, LABELS_A, NAMES)
    assert pooled(record) == pytest.approx({"frr": 2 / 5, "far": 1 / 3, "silence_far": 1.0, "confusions": 1})
    assert detection.argmax_rejection(SCORES_A, LABELS_A, NAMES) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("threshold", "at_threshold", "accepted_as"),
    [
        # Every row of table A as a clip of a word no model heard. Best keywords: yes 0.8, yes 0.4,
        # no 0.4, no 0.7, no 0.35, yes 0.45, no 0.6, yes 0.03, yes 0.55.
        (0.5, 4 / 9, {"yes": 2, "no": 2}),  # rows 0, 8 as yes; 3, 6 as no
        (0.4, 7 / 9, {"yes": 4, "no": 3}),  # and 1, 5 as yes, 2 as no
        (0.81, 0.0, {"yes": 0, "no": 0}),
        (None, None, {"yes": 0, "no": 0}),
    ],
)
def test_unseen_word_accepts(threshold, at_threshold, accepted_as):
    words = ["apple", "apple", "pizza", "river", "river", "river", "toast", "toast", "lot"]
    found = detection.unseen_word_accepts(SCORES_A, NAMES, threshold, words)
    # Argmax is a keyword for rows 0, 1, 2, 3, 6 and 8 (the argmax rule's test above).
    assert found == {
        "clips": 9,
        "words": 5,
        "accepted_at_argmax": pytest.approx(6 / 9),
        "accepted_at_threshold": at_threshold if at_threshold is None else pytest.approx(at_threshold),
        "accepted_as": accepted_as,
    }
    json.dumps(found)


def test_unseen_word_accepts_refuses_a_word_list_of_another_length():
    with pytest.raises(ValueError, match="8 words for 9 clips"):
        detection.unseen_word_accepts(SCORES_A, NAMES, 0.5, ["apple"] * 8)


def test_pooled_curve_of_table_a():
    # Correct keyword clips score 0.8, 0.4, 0.7, 0.35; non-keyword clips 0.45, 0.6, 0.03; clip 2 is
    # never accepted as yes and silence is not counted.
    curve = detection.det_curve(SCORES_A, LABELS_A, NAMES)
    assert curve.thresholds[:-1].tolist() == [0.03, 0.35, 0.4, 0.45, 0.6, 0.7, 0.8]
    assert 0.8 < curve.thresholds[-1] < 0.8 + 1e-12
    assert curve.frr * 5 == pytest.approx([1, 1, 2, 3, 3, 3, 4, 5])
    assert curve.far * 3 == pytest.approx([3, 2, 2, 2, 1, 0, 0, 0])


@pytest.mark.parametrize(
    ("keyword", "thresholds", "frr", "far"),
    [
        # Yes: clips 0 (0.8), 1 (0.4) correct, 2 never; non-keyword as yes: 5 (0.45), 7 (0.03).
        ("yes", [0.03, 0.4, 0.45, 0.6, 0.8], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1], [2 / 3, 1 / 3, 1 / 3, 0, 0, 0]),
        # No: clips 3 (0.7), 4 (0.35); non-keyword as no: 6 (0.6).
        ("no", [0.03, 0.35, 0.45, 0.6, 0.7], [0, 0, 1 / 2, 1 / 2, 1 / 2, 1], [1 / 3, 1 / 3, 1 / 3, 1 / 3, 0, 0]),
    ],
)
def test_keyword_curve_of_table_a(keyword, thresholds, frr, far):
    curve = detection.det_curve(SCORES_A, LABELS_A, NAMES, keyword)
    assert curve.thresholds[:-1].tolist() == thresholds
    assert curve.frr == pytest.approx(frr)
    assert curve.far == pytest.approx(far)


@pytest.mark.parametrize(
    ("target_far", "pooled_threshold", "yes_threshold", "no_threshold"),
    [
        (0.0, 0.7, 0.6, 0.7),
        (1 / 3, 0.6, 0.4, 0.03),  # FAR exactly at the target qualifies
        (0.34, 0.6, 0.4, 0.03),
        (0.5, 0.6, 0.4, 0.03),
        (2 / 3, 0.35, 0.03, 0.03),  # the lowest of the thresholds with FAR 2/3 (0.35, 0.4, 0.45)
        (1.0, 0.03, 0.03, 0.03),
    ],
)
def test_operating_thresholds(target_far, pooled_threshold, yes_threshold, no_threshold):
    chosen = detection.choose_thresholds(SCORES_A, LABELS_A, NAMES, target_far)
    assert chosen == {
        "target_far": target_far,
        "pooled": pooled_threshold,
        "per_keyword": {"yes": yes_threshold, "no": no_threshold},
    }


def test_thresholds_chosen_on_one_table_applied_to_another():
    chosen = detection.choose_thresholds(SCORES_A, LABELS_A, NAMES, target_far=0.0)
    summary = detection.detection_summary(SCORES_B, LABELS_B, NAMES, chosen)
    assert summary["thresholds"] == {"target_far": 0.0, "pooled": 0.7, "per_keyword": {"yes": 0.6, "no": 0.7}}
    # Pooled 0.7: 0 accepted, 1 (0.65) rejected, 2 (0.7) accepted as the tie is, 3 (0.8) a false
    # accept, 4 (0.65) and 5 (0.3) rejected.
    at_pooled = summary["at_pooled_threshold"]
    assert pooled(at_pooled) == pytest.approx({"frr": 1 / 3, "far": 1 / 2, "silence_far": 0.0, "confusions": 0})
    assert at_pooled["per_keyword"]["yes"]["frr"] == pytest.approx(1 / 2)
    assert at_pooled["per_keyword"]["no"]["frr"] == 0.0
    # Own thresholds, yes 0.6 and no 0.7: clip 1 is now accepted; 4 (no 0.65) still rejected.
    at_own = summary["at_keyword_thresholds"]
    assert pooled(at_own) == pytest.approx({"frr": 0.0, "far": 1 / 2, "silence_far": 0.0, "confusions": 0})
    assert at_own["per_keyword"]["yes"]["far"] == pytest.approx(1 / 2)
    assert at_own["per_keyword"]["no"]["far"] == 0.0
    assert summary["counts"] == {
        "clips": 6,
        "keyword_clips": 3,
        "non_keyword_clips": 2,
        "silence_clips": 1,
        "per_keyword": {"yes": 2, "no": 1},
    }


def test_argmax_rejection_is_one_minus_the_argmax_far_on_random_scores():
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(len(LABELS_12)), size=300)
    labels = rng.integers(0, len(LABELS_12), size=300)
    summary = detection.detection_summary(
        scores, labels, LABELS_12, detection.choose_thresholds(scores, labels, LABELS_12, 0.05)
    )
    argmax = summary["argmax"]
    assert argmax["non_keyword_rejection"] == pytest.approx(1 - argmax["pooled"]["far"])
    non_keyword = labels == LABELS_12.index("unknown")
    top = scores[non_keyword].argmax(axis=1)
    assert argmax["non_keyword_rejection"] == pytest.approx(np.isin(top, [0, 1]).mean())


@pytest.mark.parametrize("keyword", [None, "yes", "stop"])
def test_curve_agrees_with_the_decisions_at_every_threshold(keyword):
    rng = np.random.default_rng(1)
    # Rounded to two decimals so that many clips tie.
    scores = rng.dirichlet(np.ones(len(LABELS_12)), size=200).round(2)
    labels = rng.integers(0, len(LABELS_12), size=200)

    def rates_at(threshold):
        record = detection.rates(detection.threshold_decisions(scores, LABELS_12, threshold), labels, LABELS_12)
        entry = record["pooled"] if keyword is None else record["per_keyword"][keyword]
        return entry["frr"], entry["far"]

    curve = detection.det_curve(scores, labels, LABELS_12, keyword)
    assert np.all(np.diff(curve.thresholds) > 0)
    assert np.all(np.diff(curve.frr) >= 0) and np.all(np.diff(curve.far) <= 0)
    assert (curve.frr[-1], curve.far[-1]) == (1.0, 0.0)
    for threshold, frr, far in zip(curve.thresholds, curve.frr, curve.far, strict=True):
        assert rates_at(threshold) == pytest.approx((frr, far))
    # The chosen threshold reaches the target; no lower score of the split does.
    chosen = detection.operating_threshold(curve, 0.1)
    assert rates_at(chosen)[1] <= 0.1
    assert all(rates_at(t)[1] > 0.1 for t in np.unique(scores[scores < chosen]))


def test_no_non_keyword_clips():
    keyword_only = LABELS_A != UNK
    scores, labels = SCORES_A[keyword_only], LABELS_A[keyword_only]
    assert detection.det_curve(scores, labels, NAMES).far is None
    chosen = detection.choose_thresholds(scores, labels, NAMES, 0.01)
    assert chosen == {"target_far": 0.01, "pooled": None, "per_keyword": {"yes": None, "no": None}}
    summary = detection.detection_summary(scores, labels, NAMES, chosen)
    assert summary["at_pooled_threshold"] is None and summary["at_keyword_thresholds"] is None
    assert summary["argmax"]["pooled"]["far"] is None
    assert summary["argmax"]["non_keyword_rejection"] is None
    assert summary["curve"]["far"] is None
    assert summary["argmax"]["pooled"]["silence_far"] == 1.0
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    no_silence = detection.rates(detection.argmax_decisions(SCORES_A[:-1], NAMES), LABELS_A[:-1], NAMES)
    assert no_silence["pooled"]["silence_far"] is None
    # Thresholds chosen elsewhere still give this split's FRR.
    elsewhere = {"target_far": 0.01, "pooled": 0.5, "per_keyword": {"yes": 0.5, "no": 0.5}}
    applied = detection.detection_summary(scores, labels, NAMES, elsewhere)
    assert applied["at_pooled_threshold"]["pooled"]["frr"] == pytest.approx(3 / 5)
    assert applied["at_pooled_threshold"]["pooled"]["far"] is None


def test_keyword_without_clips():
    names = ("unknown", "silence", "yes", "no", "up")
    scores = np.hstack([SCORES_A, np.full((len(SCORES_A), 1), 0.01)])
    summary = detection.detection_summary(
        scores, LABELS_A, names, detection.choose_thresholds(scores, LABELS_A, names, 0.0)
    )
    assert summary["counts"]["per_keyword"]["up"] == 0
    up = summary["at_pooled_threshold"]["per_keyword"]["up"]
    assert up["frr"] is None and up["far"] == 0.0
    assert summary["at_pooled_threshold"]["pooled"]["frr"] == pytest.approx(3 / 5)  # as without "up"
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_all_scores_equal():
    scores = np.full((6, 4), 0.25)
    labels = np.array([YES, YES, NO, UNK, UNK, SIL])
    # Ties go to the first keyword, yes: at 0.25 every clip is accepted as yes.
    curve = detection.det_curve(scores, labels, NAMES)
    assert curve.thresholds[0] == 0.25 and len(curve.thresholds) == 2
    assert curve.frr.tolist() == [pytest.approx(1 / 3), 1.0]
    assert curve.far.tolist() == [1.0, 0.0]
    chosen = detection.choose_thresholds(scores, labels, NAMES, 0.5)
    assert chosen["pooled"] > 0.25
    summary = detection.detection_summary(scores, labels, NAMES, chosen)
    assert pooled(summary["at_pooled_threshold"])["frr"] == 1.0
    # The overall argmax is unknown, the first class: everything is rejected.
    assert summary["argmax"]["non_keyword_rejection"] == 1.0
    assert summary["argmax"]["pooled"]["frr"] == 1.0


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.where(np.eye(9, 4, dtype=bool), np.nan, SCORES_A), LABELS_A, "NaN in 4 clip"),
        (np.where(np.eye(9, 4, k=-2, dtype=bool), np.inf, SCORES_A), LABELS_A, "infinite value .* first at clip 2"),
        (SCORES_A[:, :3], LABELS_A, "shape"),
        (SCORES_A, LABELS_A[:-1], "shape"),
        (SCORES_A, LABELS_A + 1, r"labels must lie in \[0, 4\)"),
        (SCORES_A, LABELS_A.astype(float), "integer"),
        (SCORES_A[:0], LABELS_A[:0], "no clips"),
    ],
)
def test_bad_inputs_are_refused(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        detection.choose_thresholds(scores, labels, NAMES)


def test_bad_thresholds_and_targets_are_refused():
    with pytest.raises(ValueError, match="target_far"):
        detection.choose_thresholds(SCORES_A, LABELS_A, NAMES, 1.5)
    with pytest.raises(ValueError, match="finite"):
        detection.threshold_decisions(SCORES_A, NAMES, float("nan"))
    with pytest.raises(ValueError, match=r"no threshold for the keyword\(s\) \['no'\]"):
        detection.threshold_decisions(SCORES_A, NAMES, {"yes": 0.5})
    with pytest.raises(ValueError, match="not a keyword"):
        detection.det_curve(SCORES_A, LABELS_A, NAMES, "unknown")
    with pytest.raises(ValueError, match="decisions"):
        detection.rates(np.full(len(LABELS_A), UNK), LABELS_A, NAMES)


def test_summary_curve_is_thinned_and_json_clean():
    rng = np.random.default_rng(2)
    scores = rng.dirichlet(np.ones(len(LABELS_12)), size=2000)
    labels = rng.integers(0, len(LABELS_12), size=2000)
    full = detection.det_curve(scores, labels, LABELS_12)
    assert len(full.thresholds) > 1000
    summary = detection.detection_summary(
        scores, labels, LABELS_12, detection.choose_thresholds(scores, labels, LABELS_12, 0.01), max_points=50
    )
    curve = summary["curve"]
    assert 40 <= len(curve["threshold"]) <= 50 and len(curve["frr"]) == len(curve["far"]) == len(curve["threshold"])
    # A run of equal points keeps its lowest threshold: the last is the lowest accepting nothing.
    nothing = full.thresholds[(full.frr == 1.0) & (full.far == 0.0)].min()
    assert nothing < full.thresholds[-1]
    assert curve["threshold"][0] == full.thresholds[0] and curve["threshold"][-1] == nothing
    assert (curve["frr"][-1], curve["far"][-1], curve["far"][0]) == (1.0, 0.0, 1.0)
    text = json.dumps(summary, allow_nan=False)
    assert "NaN" not in text
    assert json.loads(text) == summary
    with pytest.raises(ValueError, match="max_points"):
        detection.detection_summary(scores, labels, LABELS_12, summary["thresholds"], max_points=1)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_det_plot_is_a_png(tmp_path):
    summaries = {}
    for width, noise in ((1, 0.3), (4, 0.1)):
        rng = np.random.default_rng(width)
        labels = rng.integers(0, len(LABELS_12), size=400)
        # Posteriors leaning towards the true class by 1 - noise: the wider model is the better.
        noisy = rng.dirichlet(np.ones(len(LABELS_12)), size=400) * noise
        scores = noisy + np.eye(len(LABELS_12))[labels] * (1 - noise)
        chosen = detection.choose_thresholds(scores, labels, LABELS_12, 0.01)
        summary = detection.detection_summary(scores, labels, LABELS_12, chosen)
        summaries[f"width {width}"] = json.loads(json.dumps(summary))  # as read back from a file
    path = detection.plot_det(summaries, tmp_path / "det" / "det.png", title="test")
    data = path.read_bytes()
    width, height = _png_size(data)
    assert 300 <= width <= 2000 and 300 <= height <= 2000
    assert 5_000 < len(data) < 2_000_000
    assert [p.name for p in path.parent.iterdir()] == ["det.png"]  # no temporary file left


def test_det_plot_without_any_curve_still_writes(tmp_path):
    keyword_only = LABELS_A != UNK
    scores, labels = SCORES_A[keyword_only], LABELS_A[keyword_only]
    summary = detection.detection_summary(scores, labels, NAMES, detection.choose_thresholds(scores, labels, NAMES))
    path = detection.plot_det({"model": summary}, tmp_path / "empty.png")
    assert _png_size(path.read_bytes())[0] > 0


# ---- streaming ----

EVENT = (1.0, 1.5, "yes")


@pytest.mark.parametrize(
    ("time_s", "hit"),
    [(0.75, True), (1.75, True), (1.2, True), (0.7499, False), (1.7501, False)],
)
def test_tolerance_boundaries(time_s, hit):
    result = detection.match_events([(time_s, "yes")], [EVENT], non_keyword_hours=0.5, tolerance_s=0.25)
    assert (result["hits"], result["misses"], result["false_alarms"]) == ((1, 0, 0) if hit else (0, 1, 1))
    assert result["false_alarms_per_hour"] == (0.0 if hit else 2.0)


def test_double_detection_is_one_hit_and_one_false_alarm():
    result = detection.match_events([(1.1, "yes"), (1.3, "yes")], [EVENT], 0.25, tolerance_s=0.25)
    assert (result["hits"], result["misses"], result["false_alarms"]) == (1, 0, 1)
    assert result["false_alarms_per_hour"] == 4.0
    assert result["recall"] == 1.0


def test_a_detection_in_reach_of_two_events_matches_one():
    events = [(0.8, 2.0, "yes"), (0.9, 1.1, "yes")]
    # Alone, it finds one of the two.
    alone = detection.match_events([(1.0, "yes")], events, 1.0, tolerance_s=0.1)
    assert (alone["hits"], alone["misses"], alone["false_alarms"]) == (1, 1, 0)
    # With a second detection only the long event can take, both are found: the first detection
    # goes to the event that closes first.
    both = detection.match_events([(1.8, "yes"), (1.0, "yes")], events, 1.0, tolerance_s=0.1)
    assert (both["hits"], both["misses"], both["false_alarms"]) == (2, 0, 0)
    assert both["matches"] == [[0, 0], [1, 1]]


def test_keywords_must_agree_and_are_counted_apiece():
    detections = [(1.2, "no"), (5.0, "no"), (3.1, "up")]
    events = [EVENT, (3.0, 3.4, "up")]
    result = detection.match_events(detections, events, non_keyword_hours=2.0, tolerance_s=0.25)
    assert (result["hits"], result["misses"], result["false_alarms"]) == (1, 1, 2)
    assert result["recall"] == 0.5 and result["false_alarms_per_hour"] == 1.0
    assert result["matches"] == [[2, 1]]
    assert result["per_keyword"] == {
        "no": {"events": 0, "hits": 0, "false_alarms": 2},
        "up": {"events": 1, "hits": 1, "false_alarms": 0},
        "yes": {"events": 1, "hits": 0, "false_alarms": 0},
    }
    json.dumps(result, allow_nan=False)


def test_streaming_edge_cases():
    empty = detection.match_events([], [], non_keyword_hours=0.0)
    assert empty["recall"] is None and empty["false_alarms_per_hour"] is None
    with pytest.raises(ValueError, match="non_keyword_hours"):
        detection.match_events([], [], non_keyword_hours=-1.0)
    with pytest.raises(ValueError, match="start_s <= end_s"):
        detection.match_events([], [(2.0, 1.0, "yes")], non_keyword_hours=1.0)
    with pytest.raises(ValueError, match="finite"):
        detection.match_events([(float("nan"), "yes")], [], non_keyword_hours=1.0)
