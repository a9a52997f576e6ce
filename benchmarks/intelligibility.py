"""Does each speech engine say each keyword so that a recognizer trained on real speech hears it?

For every installed engine, each of the 10 keywords is spoken plainly (no room, noise or
microphone) through the generator's own synthesis path (``bifsmn_tf.data.synthetic.speak``:
vocal-tract warping off, silence trimmed, 16 kHz) by up to ``--voices`` of the engine's voices,
spread over its list, at rates 0.85, 1 and 1.2, and decoded by pocketsphinx (its US English
model, which ships in its wheel) restricted to the 30 words of the v1 set. A take counts as heard
when pocketsphinx returns the word itself.

pocketsphinx is a weak recognizer of isolated words and of formant voices, so its rate is no
absolute measure of a take's quality; what it gives is *which* engine-word pairs a model of real
speech does not accept. With ``--transfer`` (a ``synth_transfer.json``), the rates are set beside
the held-out-engine recall of the same pairs, with their correlation over every pair.

    pip install 'bifsmn-tf[check]'
    python benchmarks/intelligibility.py [--voices 6] [--transfer benchmarks/results/synth_transfer.json]
        [--out PATH]

Writes ``PATH.md`` and ``PATH.json`` (default ``benchmarks/results/intelligibility``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

import bifsmn_tf  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from bifsmn_tf.data import tts
from bifsmn_tf.data.labels import KEYWORDS, WORDS
from bifsmn_tf.data.recognizer import RecognizerError, WordRecognizer
from bifsmn_tf.data.synthetic import speak
from bifsmn_tf.fileio import atomic_write_text

RATES = (0.85, 1.0, 1.2)
RESULTS = Path(__file__).resolve().parent / "results"


def engine_rates(name: str, recognize: WordRecognizer, voices: int) -> dict[str, dict]:
    engine = tts.load_engine(name)
    names = engine.voices()
    chosen = [names[int(i)] for i in np.unique(np.linspace(0, len(names) - 1, min(voices, len(names))).round())]
    rows = {}
    for word in KEYWORDS:
        heard = Counter(recognize(speak(engine, word, voice, rate=rate)[0]) for voice in chosen for rate in RATES)
        takes = sum(heard.values())
        others = [w or "nothing" for w, _ in heard.most_common() if w != word]
        rows[word] = {
            "heard": heard[word] / takes,
            "takes": takes,
            "most_often_instead": others[0] if others else None,
        }
    return {"voices": chosen, "words": rows}


def against_transfer(rates: dict[str, dict], transfer: dict) -> dict:
    """Over the engine-keyword pairs of both: the Pearson r between heard-rate and held-out
    recall, and the mean recall of the pairs heard at least half the time and of the others."""
    pairs = []
    for fold in transfer["folds"]:
        engine = fold.get("held_out")
        if engine in rates and "held_out_engine" in fold:
            per_class = fold["held_out_engine"]["per_class"]
            pairs += [(rates[engine]["words"][w]["heard"], per_class[w]["recall"]) for w in KEYWORDS if w in per_class]
    heard, recall = np.array(pairs).T
    clear = heard >= 0.5
    return {
        "pearson_r": float(np.corrcoef(heard, recall)[0, 1]),
        "pairs": len(pairs),
        "heard_pairs": int(clear.sum()),
        "recall_of_heard_pairs": float(recall[clear].mean()),
        "recall_of_other_pairs": float(recall[~clear].mean()),
        "transfer_command": transfer["command"],
    }


def write_report(out: Path, rates: dict[str, dict], transfer: dict | None, command: str) -> None:
    lines = [
        "# Keyword intelligibility per speech engine (pocketsphinx, 30-word grammar)",
        "",
        f"Command: `{command}`",
        "",
        "Share of plain takes that pocketsphinx hears as the word (what it most often heard "
        "instead); takes: the voices listed in the .json × rates " + ", ".join(f"{r:g}" for r in RATES) + ".",
        "",
        "| engine | voices | " + " | ".join(KEYWORDS) + " | mean |",
        "|---" * (len(KEYWORDS) + 3) + "|",
    ]
    for name, result in rates.items():
        words = result["words"]
        cells = [f"{100 * words[w]['heard']:.0f} % ({words[w]['most_often_instead'] or '–'})" for w in KEYWORDS]
        mean = np.mean([words[w]["heard"] for w in KEYWORDS])
        lines.append(f"| {name} | {len(result['voices'])} | " + " | ".join(cells) + f" | {100 * mean:.0f} % |")
    report = {"command": command, "rates": RATES, "engines": rates}
    if transfer is not None:
        t = report["against_transfer"] = against_transfer(rates, transfer)
        lines += [
            "",
            f"Against the held-out-engine recall of `{t['transfer_command']}`: Pearson r = "
            f"{t['pearson_r']:.2f} over {t['pairs']} engine-keyword pairs. The model recalls "
            f"{100 * t['recall_of_heard_pairs']:.0f} % of the {t['heard_pairs']} pairs that "
            f"pocketsphinx hears at least half the time, {100 * t['recall_of_other_pairs']:.0f} % "
            f"of the other {t['pairs'] - t['heard_pairs']}.",
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=int, default=6, help="voices per engine, spread over its list")
    parser.add_argument("--engines", help="comma-separated (default: every installed engine)")
    parser.add_argument("--transfer", type=Path, help="a synth_transfer.json to set the rates beside")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "intelligibility",
        help="report path without suffix: writes OUT.md and OUT.json",
    )
    args = parser.parse_args()
    if args.voices < 1:
        parser.error("--voices must be at least 1")
    engines = args.engines.split(",") if args.engines else list(tts.installed_engines())
    transfer = json.loads(args.transfer.read_text()) if args.transfer else None
    try:
        recognize = WordRecognizer(WORDS["v1"])
    except RecognizerError as err:
        sys.exit(str(err))
    rates = {}
    for name in engines:
        rates[name] = engine_rates(name, recognize, args.voices)
        print(name, {w: round(r["heard"], 2) for w, r in rates[name]["words"].items()}, flush=True)
    write_report(args.out, rates, transfer, ("python benchmarks/intelligibility.py " + " ".join(sys.argv[1:])).strip())
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
