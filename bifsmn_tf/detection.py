"""Detection metrics of keyword spotting: false rejects against false accepts (DET curves), the
operating threshold for a target false-accept rate, and false alarms per hour in a stream.

Numpy only (matplotlib and scipy are imported by :func:`plot_det` alone), so that evaluation, the
demo and the streaming benchmark can all use it.

**Clip roles.** Of a task's labels (:mod:`bifsmn_tf.data.labels`), ``unknown`` clips are
non-keyword speech, ``silence`` clips are silence or noise, and every other label is a keyword.
Silence is reported on its own (``silence_far``) and never enters the false-accept rate of speech.

**Decision rules.** A decision maps each clip to the keyword class it is accepted as, or to
:data:`REJECT`.

* Threshold rule (:func:`threshold_decisions`): a clip is accepted as keyword k, the argmax of its
  posteriors over the keyword classes only (ties: the first in label order), when that posterior
  is >= the threshold (k's own threshold when they are per keyword); otherwise it is rejected.
* Argmax rule (:func:`argmax_decisions`): a clip is accepted as keyword k when its argmax over all
  classes is k, and rejected when it is ``unknown`` or ``silence``.

**Rates** (:func:`rates`). For keyword k: FRR = clips of k not accepted as k / clips of k, and
FAR = non-keyword clips accepted as k / non-keyword clips. Pooled: FRR = keyword clips not accepted
as their own keyword / keyword clips, FAR = non-keyword clips accepted as any keyword / non-keyword
clips. A clip of k accepted as another keyword j is a false reject of k and a false accept of j;
that false accept is counted in j's ``confused_accepts`` and in the pooled ``confusions``, not in
FAR, whose denominator is non-keyword speech only. A rate with nothing to divide by is ``None``
(JSON ``null``), never NaN: FAR without non-keyword clips, FRR of a keyword without clips.

**Curve and operating threshold.** :func:`det_curve` has one point per distinct best-keyword
posterior among the clips it counts (keyword clips and non-keyword clips; for keyword k: the clips
of k and the non-keyword clips), ascending, and a last threshold just above the highest posterior
of any clip, which accepts nothing (FAR 0, FRR 1). FRR never falls and FAR never rises along it.
:func:`operating_threshold` returns the lowest threshold of the curve whose FAR <= the target: the
best recall at that FAR. A clip whose posterior equals the threshold is accepted, so tied clips are
accepted or rejected together; the threshold is always a posterior of a clip of the split (or the
accept-nothing one), the low end of the range of thresholds that give the same rates there.

Choose on validation, apply on test::

    thresholds = choose_thresholds(val_scores, val_labels, labels, target_far=0.01)
    summary = detection_summary(test_scores, test_labels, labels, thresholds)

**The summary** (:func:`detection_summary`), plain JSON types only:

* ``thresholds``: as given (:func:`choose_thresholds`): ``target_far``, the FAR they were chosen
  for; ``pooled``, the one threshold for all keywords chosen on the pooled FAR; ``per_keyword``,
  keyword -> its own threshold chosen on its own FAR. ``None`` when the split they were chosen on
  had no non-keyword clips.
* ``counts``: ``clips``, ``keyword_clips``, ``non_keyword_clips``, ``silence_clips`` and
  ``per_keyword`` (keyword -> clips of it).
* ``at_pooled_threshold``: :func:`rates` of the threshold rule with the pooled threshold;
  ``at_keyword_thresholds``: the same with each keyword's own threshold. Both ``None`` when the
  thresholds are. A :func:`rates` record is ``{"pooled": {...}, "per_keyword": {keyword: {...}}}``:

  - pooled: ``frr``, ``far``, ``silence_far`` (silence clips accepted as any keyword / silence
    clips), ``false_rejects``, ``false_accepts`` (non-keyword clips accepted),
    ``silence_false_accepts``, ``confusions`` (keyword clips accepted as another keyword);
  - per keyword: ``frr``, ``far``, ``false_rejects``, ``false_accepts`` (non-keyword clips
    accepted as it), ``confused_accepts`` (clips of other keywords accepted as it).

* ``argmax``: the :func:`rates` record of the argmax rule, plus ``non_keyword_rejection``
  (:func:`argmax_rejection`; equals 1 - its pooled FAR).
* ``curve``: the pooled DET curve of this split for plotting: ``threshold``, ``frr`` and ``far``
  lists (``frr``/``far`` ``None`` without keyword/non-keyword clips); a run of points with equal
  counts keeps only its lowest threshold, then at most ``max_points`` points evenly spaced along
  the curve are kept, its first and last included.

**Words no model heard** (:func:`unseen_word_accepts`): clips of words outside the training
vocabulary (the synthetic set's ``_unseen_words_/``), all non-keywords: the share the argmax rule
and the pooled threshold take for keywords, and as which keyword.

**Streaming** (:func:`match_events`): detections ``(time_s, keyword)`` against the spoken keywords
``(start_s, end_s, keyword)``: hits, misses, false alarms, recall and false alarms per hour of
non-keyword speech.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bifsmn_tf.data.labels import SILENCE, UNKNOWN
from bifsmn_tf.fileio import atomic_path

#: The decision of a clip accepted as no keyword.
REJECT = -1

_KEYWORD, _NON_KEYWORD, _SILENCE = 0, 1, 2

#: Rates are drawn clipped to [eps, 1 - eps]: the normal deviate of 0 and 1 is infinite.
_PLOT_EPSILON = 1e-5
_PLOT_TICKS_PERCENT = (0.01, 0.1, 1, 5, 20, 50, 80, 95, 99, 99.9)


@dataclasses.dataclass(frozen=True)
class DetCurve:
    """False rejects and false accepts of the threshold rule at every distinct threshold.

    Attributes:
        thresholds: ``(P,)`` ascending; the last one accepts nothing.
        true_accepts: ``(P,)`` keyword clips accepted as their own keyword (k's clips for k).
        false_accepts: ``(P,)`` non-keyword clips accepted as any keyword (as k for k).
        keyword_clips: the FRR denominator.
        non_keyword_clips: the FAR denominator.
    """

    thresholds: np.ndarray
    true_accepts: np.ndarray
    false_accepts: np.ndarray
    keyword_clips: int
    non_keyword_clips: int

    @property
    def frr(self) -> np.ndarray | None:
        """``(P,)`` false-reject rates; ``None`` without keyword clips."""
        if not self.keyword_clips:
            return None
        return (self.keyword_clips - self.true_accepts) / self.keyword_clips

    @property
    def far(self) -> np.ndarray | None:
        """``(P,)`` false-accept rates on non-keyword speech; ``None`` without non-keyword clips."""
        if not self.non_keyword_clips:
            return None
        return self.false_accepts / self.non_keyword_clips


def keyword_classes(label_names: Sequence[str]) -> np.ndarray:
    """Class indices of the keywords: every label but ``unknown`` and ``silence``, in label order."""
    return np.flatnonzero(_roles(label_names) == _KEYWORD)


def best_keyword(scores: np.ndarray, label_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The keyword class of highest posterior of each clip (ties: the first) and that posterior.

    Args:
        scores: ``(N, C)`` posteriors, columns in the order of ``label_names``.
        label_names: the ``C`` labels.

    Returns:
        ``(N,)`` class indices and ``(N,)`` float64 posteriors.
    """
    scores = _checked_scores(scores, label_names)
    keywords = keyword_classes(label_names)
    best = keywords[np.argmax(scores[:, keywords], axis=1)]
    return best, scores[np.arange(len(scores)), best]


def threshold_decisions(
    scores: np.ndarray, label_names: Sequence[str], threshold: float | Mapping[str, float]
) -> np.ndarray:
    """Decisions of the threshold rule (see the module docstring).

    Args:
        scores: ``(N, C)`` posteriors.
        label_names: the ``C`` labels.
        threshold: one threshold for all keywords, or keyword -> its own threshold.

    Returns:
        ``(N,)`` accepted keyword class index, or :data:`REJECT`.
    """
    best, posterior = best_keyword(scores, label_names)
    per_class = np.full(len(label_names), np.nan)
    if isinstance(threshold, Mapping):
        keywords = keyword_classes(label_names)
        missing = [label_names[k] for k in keywords if label_names[k] not in threshold]
        if missing:
            raise ValueError(f"no threshold for the keyword(s) {missing}")
        for k in keywords:
            per_class[k] = _checked_threshold(threshold[label_names[k]])
    else:
        per_class[:] = _checked_threshold(threshold)
    return np.where(posterior >= per_class[best], best, REJECT)


def argmax_decisions(scores: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """Decisions of the argmax rule: ``(N,)`` the argmax class when it is a keyword, else REJECT."""
    top = np.argmax(_checked_scores(scores, label_names), axis=1)
    return np.where(_roles(label_names)[top] == _KEYWORD, top, REJECT)


def rates(decisions: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Pooled and per-keyword FRR/FAR and counts of ``decisions`` (the module docstring's record).

    Args:
        decisions: ``(N,)`` accepted keyword class or :data:`REJECT`, e.g. of
            :func:`threshold_decisions` or :func:`argmax_decisions`.
        labels: ``(N,)`` true class indices.
        label_names: the labels the indices refer to.
    """
    labels = _checked_labels(labels, len(label_names))
    decisions = np.asarray(decisions)
    keywords = keyword_classes(label_names)
    if decisions.shape != labels.shape or not np.isin(decisions, np.append(keywords, REJECT)).all():
        raise ValueError(f"decisions must be {labels.shape} keyword class indices or {REJECT}")
    role = _roles(label_names)[labels]
    keyword_clip, non_keyword, silence = role == _KEYWORD, role == _NON_KEYWORD, role == _SILENCE
    accepted = decisions != REJECT
    # Only a keyword clip can be accepted as its own label: decisions are keyword classes.
    hit = decisions == labels
    missed = keyword_clip & ~hit
    confused = keyword_clip & accepted & ~hit
    pooled = {
        "frr": _rate(missed.sum(), keyword_clip.sum()),
        "far": _rate((non_keyword & accepted).sum(), non_keyword.sum()),
        "silence_far": _rate((silence & accepted).sum(), silence.sum()),
        "false_rejects": int(missed.sum()),
        "false_accepts": int((non_keyword & accepted).sum()),
        "silence_false_accepts": int((silence & accepted).sum()),
        "confusions": int(confused.sum()),
    }
    per_keyword = {}
    for k in keywords:
        false_accepts = int((non_keyword & (decisions == k)).sum())
        per_keyword[label_names[k]] = {
            "frr": _rate((missed & (labels == k)).sum(), (labels == k).sum()),
            "far": _rate(false_accepts, non_keyword.sum()),
            "false_rejects": int((missed & (labels == k)).sum()),
            "false_accepts": false_accepts,
            "confused_accepts": int((confused & (decisions == k)).sum()),
        }
    return {"pooled": pooled, "per_keyword": per_keyword}


def argmax_rejection(scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> float | None:
    """Share of non-keyword clips whose argmax is ``unknown`` or ``silence``; None without any."""
    labels = _checked_labels(labels, len(label_names))
    roles = _roles(label_names)
    top = np.argmax(_checked_scores(scores, label_names, len(labels)), axis=1)
    non_keyword = roles[labels] == _NON_KEYWORD
    return _rate((non_keyword & (roles[top] != _KEYWORD)).sum(), non_keyword.sum())


def det_curve(
    scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str], keyword: str | None = None
) -> DetCurve:
    """The exact DET curve of the threshold rule, pooled or of one keyword.

    Args:
        scores: ``(N, C)`` posteriors.
        labels: ``(N,)`` true class indices.
        label_names: the ``C`` labels.
        keyword: a keyword label for its own curve; ``None``: pooled over all keywords.

    Returns:
        The curve over all distinct thresholds (see the module docstring).
    """
    labels = _checked_labels(labels, len(label_names))
    best, posterior = best_keyword(_checked_scores(scores, label_names, len(labels)), label_names)
    role = _roles(label_names)[labels]
    non_keyword = role == _NON_KEYWORD
    if keyword is None:
        own, false = role == _KEYWORD, non_keyword
    else:
        keywords = {label_names[k]: k for k in keyword_classes(label_names)}
        if keyword not in keywords:
            raise ValueError(f"{keyword!r} is not a keyword of {list(label_names)}")
        k = keywords[keyword]
        own, false = labels == k, non_keyword & (best == k)
    # Above every clip's posterior (silence included), the same for every curve of the split.
    accept_nothing = np.nextafter(posterior.max(), np.inf)
    thresholds = np.append(np.unique(posterior[own | non_keyword]), accept_nothing)
    return DetCurve(
        thresholds=thresholds,
        true_accepts=_at_or_above(posterior[own & (best == labels)], thresholds),
        false_accepts=_at_or_above(posterior[false], thresholds),
        keyword_clips=int(own.sum()),
        non_keyword_clips=int(non_keyword.sum()),
    )


def operating_threshold(curve: DetCurve, target_far: float) -> float | None:
    """The lowest threshold of ``curve`` whose FAR <= ``target_far``; None when FAR is undefined.

    There always is one: the curve's last threshold accepts nothing.
    """
    if not 0.0 <= target_far <= 1.0:
        raise ValueError(f"target_far must be within [0, 1], got {target_far}")
    far = curve.far
    if far is None:
        return None
    # FAR never rises with the threshold: the first point within the target is the lowest.
    return float(curve.thresholds[np.flatnonzero(far <= target_far)[0]])


def choose_thresholds(
    scores: np.ndarray, labels: np.ndarray, label_names: Sequence[str], target_far: float = 0.01
) -> dict[str, Any]:
    """The pooled threshold and each keyword's own threshold for ``target_far`` on this split.

    Returns:
        ``{"target_far": float, "pooled": float | None, "per_keyword": {keyword: float | None}}``
        (JSON-ready; ``None`` without non-keyword clips), the input of :func:`detection_summary`.
    """
    keywords = [label_names[k] for k in keyword_classes(label_names)]
    return {
        "target_far": float(target_far),
        "pooled": operating_threshold(det_curve(scores, labels, label_names), target_far),
        "per_keyword": {
            keyword: operating_threshold(det_curve(scores, labels, label_names, keyword), target_far)
            for keyword in keywords
        },
    }


def detection_summary(
    scores: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    thresholds: Mapping[str, Any],
    *,
    max_points: int = 200,
) -> dict[str, Any]:
    """The JSON-ready summary of the module docstring.

    Args:
        scores: ``(N, C)`` posteriors of this split.
        labels: ``(N,)`` true class indices.
        label_names: the ``C`` labels.
        thresholds: of :func:`choose_thresholds`, on this split or on another one (validation).
        max_points: at most this many points of the curve are kept (at least 2).
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    labels = _checked_labels(labels, len(label_names))
    scores = _checked_scores(scores, label_names, len(labels))
    role = _roles(label_names)[labels]
    keywords = keyword_classes(label_names)
    chosen = thresholds["pooled"] is not None
    return {
        "thresholds": {
            "target_far": float(thresholds["target_far"]),
            "pooled": thresholds["pooled"],
            "per_keyword": dict(thresholds["per_keyword"]),
        },
        "counts": {
            "clips": len(labels),
            "keyword_clips": int((role == _KEYWORD).sum()),
            "non_keyword_clips": int((role == _NON_KEYWORD).sum()),
            "silence_clips": int((role == _SILENCE).sum()),
            "per_keyword": {label_names[k]: int((labels == k).sum()) for k in keywords},
        },
        "at_pooled_threshold": (
            rates(threshold_decisions(scores, label_names, thresholds["pooled"]), labels, label_names)
            if chosen
            else None
        ),
        "at_keyword_thresholds": (
            rates(threshold_decisions(scores, label_names, thresholds["per_keyword"]), labels, label_names)
            if chosen
            else None
        ),
        "argmax": {
            **rates(argmax_decisions(scores, label_names), labels, label_names),
            "non_keyword_rejection": argmax_rejection(scores, labels, label_names),
        },
        "curve": _curve_points(det_curve(scores, labels, label_names), max_points),
    }


def plot_det(summaries: Mapping[str, Mapping[str, Any]], path: str | Path, *, title: str = "DET curve") -> Path:
    """Pooled DET curves on normal-deviate axes with their operating points, saved atomically.

    Args:
        summaries: line name (a width, a model) -> its :func:`detection_summary`.
        path: the PNG to write.
        title: the figure title.

    Returns:
        ``path``. A summary without non-keyword or keyword clips draws no line; the file is
        written even when no summary has one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    def deviate(rate) -> np.ndarray:
        return norm.ppf(np.clip(np.asarray(rate, dtype=np.float64), _PLOT_EPSILON, 1.0 - _PLOT_EPSILON))

    figure, axis = plt.subplots(figsize=(6.5, 6.0))
    try:
        drawn = 0
        for name, summary in summaries.items():
            curve = summary["curve"]
            if curve["far"] is None or curve["frr"] is None:
                continue
            (line,) = axis.plot(deviate(curve["far"]), deviate(curve["frr"]), label=str(name))
            drawn += 1
            point = summary["at_pooled_threshold"]
            if point is not None and None not in (point["pooled"]["far"], point["pooled"]["frr"]):
                far, frr = point["pooled"]["far"], point["pooled"]["frr"]
                label = (
                    f"{name}: FRR {100 * frr:.2f}% at FAR {100 * far:.2f}% "
                    f"(threshold {summary['thresholds']['pooled']:.3f})"
                )
                axis.plot(deviate(far), deviate(frr), "o", color=line.get_color(), label=label)
        ticks = np.asarray(_PLOT_TICKS_PERCENT) / 100.0
        limits = deviate([0.0, 1.0])
        axis.set_xticks(deviate(ticks), [f"{t:g}" for t in _PLOT_TICKS_PERCENT])
        axis.set_yticks(deviate(ticks), [f"{t:g}" for t in _PLOT_TICKS_PERCENT])
        axis.set(xlim=limits, ylim=limits, title=title)
        axis.set(xlabel="false accepts on non-keyword speech (%)", ylabel="false rejects (%)")
        axis.grid(True, alpha=0.3)
        if drawn:
            axis.legend(fontsize="small", loc="best")
        else:
            message = "no curve: no keyword or no non-keyword clips"
            axis.text(0.5, 0.5, message, ha="center", transform=axis.transAxes)
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def match_events(
    detections: Iterable[tuple[float, str]],
    events: Iterable[tuple[float, float, str]],
    non_keyword_hours: float,
    *,
    tolerance_s: float = 0.5,
) -> dict[str, Any]:
    """Match streaming detections to the spoken keywords; count hits, misses and false alarms.

    A detection can match an event of its own keyword when ``start_s - tolerance_s <= time_s <=
    end_s + tolerance_s`` (both ends included). Each event is matched at most once and each
    detection at most once, and the matching is a largest one: detections are taken in time
    order, each to the open event of its keyword that closes first, which is optimal for points
    against intervals. Every detection left unmatched is a false alarm wherever it falls (a second
    detection of one event, a wrong keyword on an event, a detection in non-keyword speech); pass
    only the detections of the stretch whose duration is ``non_keyword_hours`` to keep the rate
    to that stretch.

    Args:
        detections: ``(time_s, keyword)`` in any order.
        events: ``(start_s, end_s, keyword)`` of the keywords spoken.
        non_keyword_hours: hours of non-keyword speech, the denominator of false alarms per hour.
        tolerance_s: how far before the start or after the end of an event its detection may be.

    Returns:
        ``events``, ``detections``, ``hits``, ``misses``, ``false_alarms``, ``recall`` (None without
        events), ``false_alarms_per_hour`` (None for 0 hours), ``non_keyword_hours``,
        ``tolerance_s``, ``matches`` (``[detection index, event index]`` pairs in detection
        order) and ``per_keyword`` (keyword -> ``events``, ``hits``, ``false_alarms``).
    """
    detections = [(float(t), str(k)) for t, k in detections]
    events = [(float(start), float(end), str(k)) for start, end, k in events]
    if not (np.isfinite(non_keyword_hours) and non_keyword_hours >= 0):
        raise ValueError(f"non_keyword_hours must be finite and >= 0, got {non_keyword_hours}")
    if not (np.isfinite(tolerance_s) and tolerance_s >= 0):
        raise ValueError(f"tolerance_s must be finite and >= 0, got {tolerance_s}")
    if not all(np.isfinite(t) for t, _ in detections):
        raise ValueError("detection times must be finite")
    if not all(np.isfinite(start) and np.isfinite(end) and start <= end for start, end, _ in events):
        raise ValueError("events must have finite start_s <= end_s")
    keywords = sorted({k for _, k in detections} | {k for *_, k in events})
    matches = []
    for keyword in keywords:
        matches += _match_keyword(
            sorted((t, i) for i, (t, k) in enumerate(detections) if k == keyword),
            sorted((start, end, i) for i, (start, end, k) in enumerate(events) if k == keyword),
            tolerance_s,
        )
    matches.sort()
    matched_events = {e for _, e in matches}
    per_keyword = {}
    for keyword in keywords:
        spoken = sum(k == keyword for *_, k in events)
        hits = sum(events[e][2] == keyword for e in matched_events)
        per_keyword[keyword] = {
            "events": spoken,
            "hits": hits,
            "false_alarms": sum(k == keyword for _, k in detections) - hits,
        }
    false_alarms = len(detections) - len(matches)
    return {
        "events": len(events),
        "detections": len(detections),
        "hits": len(matches),
        "misses": len(events) - len(matches),
        "false_alarms": false_alarms,
        "recall": _rate(len(matches), len(events)),
        "false_alarms_per_hour": false_alarms / non_keyword_hours if non_keyword_hours else None,
        "non_keyword_hours": float(non_keyword_hours),
        "tolerance_s": float(tolerance_s),
        "matches": [[d, e] for d, e in matches],
        "per_keyword": per_keyword,
    }


def _match_keyword(
    detections: list[tuple[float, int]], events: list[tuple[float, float, int]], tolerance_s: float
) -> list[tuple[int, int]]:
    """Largest matching of time-sorted ``(time, index)`` to start-sorted ``(start, end, index)``."""
    open_events: list[tuple[float, int]] = []  # heap of (end, index) of events a detection may reach
    matches = []
    upcoming = 0
    for time, detection in detections:
        while upcoming < len(events) and events[upcoming][0] - tolerance_s <= time:
            heapq.heappush(open_events, (events[upcoming][1], events[upcoming][2]))
            upcoming += 1
        # Detections only get later: an event closed to this one is closed to all the rest.
        while open_events and open_events[0][0] + tolerance_s < time:
            heapq.heappop(open_events)
        if open_events:
            matches.append((detection, heapq.heappop(open_events)[1]))
    return matches


def _curve_points(curve: DetCurve, max_points: int) -> dict[str, Any]:
    """The curve as lists, without repeated points, thinned to at most ``max_points``."""
    changed = (np.diff(curve.true_accepts) != 0) | (np.diff(curve.false_accepts) != 0)
    keep = np.flatnonzero(np.append(True, changed))
    if len(keep) > max_points:
        keep = keep[np.unique(np.linspace(0, len(keep) - 1, max_points).round().astype(int))]
    frr, far = curve.frr, curve.far
    return {
        "threshold": curve.thresholds[keep].tolist(),
        "frr": None if frr is None else frr[keep].tolist(),
        "far": None if far is None else far[keep].tolist(),
    }


def unseen_word_accepts(
    scores: np.ndarray, label_names: Sequence[str], threshold: float | None, words: Sequence[str]
) -> dict[str, Any]:
    """How often clips of words no model was trained on are taken for keywords.

    Every clip is a non-keyword; the rules are the module's.

    Args:
        scores: ``(N, C)`` posteriors of the clips.
        label_names: the ``C`` labels.
        threshold: the pooled operating threshold (chosen on validation), or ``None``.
        words: ``(N,)`` the word of each clip.

    Returns:
        ``clips``, ``words`` (distinct), ``accepted_at_argmax`` (share whose argmax is a
        keyword), ``accepted_at_threshold`` (share accepted by the threshold rule; ``None``
        without a threshold) and ``accepted_as`` (keyword -> clips the threshold rule accepted as
        it, each keyword listed).
    """
    scores = _checked_scores(scores, label_names)
    if len(words) != len(scores):
        raise ValueError(f"{len(words)} words for {len(scores)} clips")
    at_argmax = argmax_decisions(scores, label_names) != REJECT
    accepted_as = {label_names[k]: 0 for k in keyword_classes(label_names)}
    at_threshold = None
    if threshold is not None:
        decisions = threshold_decisions(scores, label_names, threshold)
        at_threshold = float(np.mean(decisions != REJECT))
        for k in decisions[decisions != REJECT]:
            accepted_as[label_names[k]] += 1
    return {
        "clips": len(scores),
        "words": len(set(words)),
        "accepted_at_argmax": float(np.mean(at_argmax)),
        "accepted_at_threshold": at_threshold,
        "accepted_as": accepted_as,
    }


def _at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(P,)`` how many of ``values`` are >= each threshold."""
    return len(values) - np.searchsorted(np.sort(values), thresholds, side="left")


def _rate(count, total) -> float | None:
    return float(count / total) if total else None


def _roles(label_names: Sequence[str]) -> np.ndarray:
    roles = np.array(
        [{UNKNOWN: _NON_KEYWORD, SILENCE: _SILENCE}.get(name, _KEYWORD) for name in label_names], dtype=int
    )
    if not (roles == _KEYWORD).any():
        raise ValueError(f"no keyword among the labels {list(label_names)}")
    return roles


def _checked_scores(scores: np.ndarray, label_names: Sequence[str], clips: int | None = None) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(label_names) or clips not in (None, len(scores)):
        expected = f"({'clips' if clips is None else clips}, {len(label_names)})"
        raise ValueError(f"scores have shape {scores.shape}; expected {expected}")
    if not len(scores):
        raise ValueError("no clips: scores are empty")
    for problem, bad in (("NaN", np.isnan(scores)), ("an infinite value", np.isinf(scores))):
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            raise ValueError(f"scores contain {problem} in {rows.size} clip(s), the first at clip {rows[0]}")
    return scores


def _checked_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    if labels.size and not (0 <= labels.min() and labels.max() < num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _checked_threshold(threshold: float) -> float:
    if threshold is None or not np.isfinite(threshold):
        raise ValueError(f"a threshold must be a finite number, got {threshold}")
    return float(threshold)
