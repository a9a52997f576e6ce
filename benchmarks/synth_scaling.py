"""What buys transfer to an unseen speech engine: more engines, or more speakers of the same ones?

A research script, like ``synth_transfer.py`` whose training loop it uses (not the package's
trainer; that module's docstring says why).

The leave-one-engine-out protocol of ``synth_transfer.py`` (same teacher, frontend flags, set and
balanced 12-class score), with the training data cut down along two axes. For every held-out
engine E, the teacher is trained on

- **k of the other engines**, every speaker of them, for k = 1 … (engines − 2): ``--subsets``
  seeded draws of k engines each (``--subsets 0``: every combination);
- **every other engine** (the full fold of ``synth_transfer.py``);
- **every other engine, a fraction of the speakers** (``--speaker-fractions``): that share of each
  engine's training speakers, drawn with the seed, every word of each kept speaker.

and scored on every clip of E. If held-out accuracy climbs with engines but hardly with speakers,
the set's limit is how many engines it has, not how many clips it makes of them. ``--axis
speakers`` trains only the last two kinds (a larger set, where k-engine runs would cost the most).

    python benchmarks/synth_scaling.py --data DIR [--axis both|engines|speakers] [--subsets 2]
        [--speaker-fractions 0.25,0.5] [synth_transfer.py's set, teacher and frontend flags] [--out PATH]

Each trained run is appended to ``OUT.runs.jsonl`` as it finishes; a rerun with the same settings
skips the runs found there (an interrupted benchmark resumes). Writes ``OUT.md``, ``OUT.json`` and
``OUT.png`` (default ``benchmarks/results/synth_scaling``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from synth_transfer import (
    RESULTS,
    ClipFeatures,
    add_common_arguments,
    fit,
    model_settings,
    model_summary,
    posteriors,
    prepare,
    scores,
)

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.fileio import atomic_write_text


def speaker_subset(data: ClipFeatures, train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``train`` narrowed to ``fraction`` of each engine's training speakers (at least one)."""
    rng = np.random.default_rng(seed)
    kept = np.zeros_like(train)
    for engine in np.unique(data.engine[train]):
        speakers = np.unique(data.speaker[train & (data.engine == engine)])
        chosen = rng.choice(speakers, max(1, round(fraction * len(speakers))), replace=False)
        kept |= train & np.isin(data.speaker, chosen)
    return kept


def plan_runs(engines: tuple[str, ...], axis: str, subsets: int, fractions: list[float], seed: int) -> list[dict]:
    """Every run: the held-out engine, the engines trained on, the share of their speakers."""
    rng = np.random.default_rng(seed)
    runs = []
    for held_out in engines:
        others = [e for e in engines if e != held_out]
        for k in range(1, len(others) if axis != "speakers" else 1):
            combinations = list(itertools.combinations(others, k))
            if subsets:
                picked = rng.choice(len(combinations), min(subsets, len(combinations)), replace=False)
                combinations = [combinations[i] for i in sorted(picked)]
            runs += [{"held_out": held_out, "trained_on": list(c), "speaker_fraction": 1.0} for c in combinations]
        kept = [*fractions, 1.0] if axis != "engines" else [1.0]
        runs += [{"held_out": held_out, "trained_on": others, "speaker_fraction": f} for f in kept]
    return runs


def run_key(run: dict) -> str:
    return json.dumps([run["held_out"], run["trained_on"], run["speaker_fraction"]])


def train_and_score(data: ClipFeatures, run: dict, args, frontend) -> dict:
    trained = np.isin(data.engine, run["trained_on"])
    train = trained & (data.split == "training")
    if run["speaker_fraction"] < 1:
        train = speaker_subset(data, train, run["speaker_fraction"], args.seed)
    started = time.perf_counter()
    unseen = data.held_out_clips(run["held_out"])
    # Validation only reports progress; every seen engine's speakers keep it the same across runs.
    validation = (data.engine != run["held_out"]) & (data.split == "validation")
    model, training_clips = fit(data, train, validation, args, frontend)
    held = scores(posteriors(model, data.features[unseen]), data.labels[unseen])
    return {
        **run,
        "training_speakers": int(len(np.unique(data.speaker[train]))),
        "training_clips": training_clips,
        "held_out_engine": {k: held[k] for k in ("balanced", "keywords", "unknown")},
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def load_finished(path: Path, settings: dict) -> dict[str, dict]:
    """Runs already in ``path`` made with the same settings, by key; anything else is started anew."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    if not lines or json.loads(lines[0]) != settings:
        return {}
    rows = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
        rows[run_key(row)] = row
    return rows


def mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def summarise(rows: list[dict], engines: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean held-out balanced accuracy per held-out engine and column (``k engines`` and
    ``all, F of the speakers``), plus the training clips each column averages."""
    table: dict[str, dict[str, float]] = {}
    others = len(engines) - 1
    for row in rows:
        column = (
            f"{len(row['trained_on'])} engine{'s' * (len(row['trained_on']) > 1)}"
            if row["speaker_fraction"] == 1
            else f"{others} engines, {row['speaker_fraction']:g} of the speakers"
        )
        table.setdefault(column, {}).setdefault(row["held_out"], []).append(row)
    return {
        column: {
            **{e: mean(r["held_out_engine"]["balanced"] for r in by_engine.get(e, [])) for e in engines},
            "mean": mean(mean(r["held_out_engine"]["balanced"] for r in rs) for rs in by_engine.values()),
            "training_clips": mean(r["training_clips"] for rs in by_engine.values() for r in rs),
        }
        for column, by_engine in table.items()
    }


def plot(summary: dict[str, dict[str, float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_engines = sorted((c for c in summary if "speakers" not in c), key=lambda c: int(c.split()[0]))
    by_speakers = sorted((c for c in summary if "speakers" in c), key=lambda c: summary[c]["training_clips"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    labelled = set()
    for columns, label, marker in (
        (by_engines, "more engines (every speaker)", "o"),
        (by_speakers + by_engines[-1:], "more speakers (every other engine)", "s"),
    ):
        if len(columns) < 2:  # an axis this run did not train
            continue
        x = [summary[c]["training_clips"] for c in columns]
        y = [100 * summary[c]["mean"] for c in columns]
        ax.plot(x, y, marker=marker, label=label)
        for c, xi, yi in zip(columns, x, y):
            if c in labelled:  # the full fold ends both lines
                continue
            labelled.add(c)
            ax.annotate(
                c.replace(" of the speakers", " spk"), (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7
            )
    ax.axhline(80, color="grey", linestyle="--", linewidth=1, label="aim (80 %)")
    ax.set_xscale("log")
    ax.margins(x=0.1)  # room for the labels of the end points
    ax.set_xlabel("training clips (log scale)")
    ax.set_ylabel("held-out engine: balanced accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(summary, rows, engines, args, command: str, generation: str, config) -> None:
    columns = sorted(summary, key=lambda c: ("speakers" in c, summary[c]["training_clips"]))
    percent = lambda v: "–" if np.isnan(v) else f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        "# Synthetic set: held-out engine accuracy against engines and speakers trained on",
        "",
        f"Command: `{command}`",
        "",
        f"Set: `bifsmn-tf data synth --clips-per-word {config.clips_per_word} --seed {config.seed}` "
        f"(v1 words, engines {', '.join(engines)}; {generation}). Model as in `synth_transfer.py`: "
        f"{model_summary(args)}. "
        + (
            f"Draws of k engines per held-out engine: {args.subsets or 'every combination'}. "
            if args.axis != "speakers"
            else ""
        )
        + f"Machine: {platform.machine()}.",
        "",
        "Balanced 12-class accuracy (mean recall over the 10 keywords and unknown) on every clip of "
        "the held-out engine; where a column has several draws, their mean. Last row: the mean "
        "training clips of the column.",
        "",
        "| held-out engine | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for engine in [*engines, "mean"]:
        lines.append(f"| {engine} | " + " | ".join(percent(summary[c][engine]) for c in columns) + " |")
    lines.append("| training clips | " + " | ".join(f"{summary[c]['training_clips']:.0f}" for c in columns) + " |")
    lines += [
        "",
        "Every run:",
        "",
        "| held-out | trained on | speakers | training clips | held-out balanced | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['held_out']} | {', '.join(r['trained_on'])} | {r['training_speakers']} "
            f"({r['speaker_fraction']:g}) | {r['training_clips']} | {percent(r['held_out_engine']['balanced'])} "
            f"| {r['train_seconds']} |"
        )
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(
        args.out.with_suffix(".json"),
        json.dumps(
            {
                "command": command,
                "synth_config": config.to_dict(),
                "model": args.model,
                **model_settings(args),
                "generation": generation,
                "axis": args.axis,
                "subsets": args.subsets,
                "summary": summary,
                "runs": rows,
            },
            indent=2,
        )
        + "\n",
    )


def fractions_arg(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v]
    if not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must lie strictly between 0 and 1, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--axis",
        choices=("both", "engines", "speakers"),
        default="both",
        help="which cut of the training data to train: k of the other engines, a share of the speakers, "
        "or both (default); the full fold always runs",
    )
    parser.add_argument(
        "--subsets",
        type=int,
        default=2,
        help="seeded draws of k engines per held-out engine and k (default 2; 0: every combination)",
    )
    parser.add_argument(
        "--speaker-fractions",
        type=fractions_arg,
        default=[0.25, 0.5],
        help="shares of each engine's training speakers to train on, comma-separated (default 0.25,0.5)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "synth_scaling",
        help="report path without suffix: writes OUT.md, OUT.json, OUT.png and OUT.runs.jsonl",
    )
    args = parser.parse_args()
    if args.subsets < 0:
        parser.error(f"--subsets must be at least 0, got {args.subsets}")
    config, root, generation, frontend, data = prepare(args, parser)
    if len(config.engines) < (3 if args.axis != "speakers" else 2):
        parser.error(f"--axis {args.axis} needs at least {3 if args.axis != 'speakers' else 2} engines in the set")
    untrained = [e for e in config.engines if not ((data.engine == e) & (data.split == "training")).any()]
    if untrained:
        parser.error(f"{root}: no training clips of {', '.join(untrained)} (raise --clips-per-word)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs_path = args.out.with_suffix(".runs.jsonl")
    settings = {"synth_config": config.to_dict(), **model_settings(args), "seed": args.seed}
    finished = load_finished(runs_path, settings)
    if not finished:
        atomic_write_text(runs_path, json.dumps(settings) + "\n")
    runs = plan_runs(config.engines, args.axis, args.subsets, args.speaker_fractions, args.seed)
    rows = []
    for i, run in enumerate(runs, 1):
        row = finished.get(run_key(run))
        if row is None:
            row = train_and_score(data, run, args, frontend)
            with runs_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"[{i}/{len(runs)}] {json.dumps(row)}", flush=True)
    summary = summarise(rows, config.engines)
    command = ("python benchmarks/synth_scaling.py " + " ".join(sys.argv[1:])).strip()
    write_report(summary, rows, config.engines, args, command, generation, config)
    title = f"Transfer to an unseen engine ({config.clips_per_word} speakers per word in the set)"
    plot(summary, title, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
