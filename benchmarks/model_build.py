"""Fixed costs before training or inference starts: building the demo's models and tracing the
student's training step (wall seconds, in one process, after TensorFlow has loaded).

Rows: ``build teacher``, ``build student`` (the second build in the process, so one-time
imports are not counted), ``width model`` (width 8 for LCE), and ``first fit`` (``Distiller.fit``
over two batches of random features: tracing the train and test steps plus two steps). Every
process builds these once per run, evaluation and conversion, and the tests build hundreds.

``--code-root DIR`` measures another checkout of the package (e.g. ``git worktree add /tmp/old
REV``) instead of the installed one, for before/after rows on the same machine. Each invocation
appends its rows to ``--out`` (JSON lines) and rewrites the Markdown table beside it::

    python benchmarks/model_build.py --label "after"
    python benchmarks/model_build.py --code-root /tmp/old --label "before (52ab3fc)"

Timings are for the CPU they were measured on; run with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_OUT = Path(__file__).parent / "results" / "model_build.jsonl"


def _use_checkout(code_root: Path) -> None:
    """Import ``bifsmn_tf`` from ``code_root``: an editable install's finder would win otherwise."""
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
    sys.path.insert(0, str(code_root))


def _timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def measure() -> dict[str, float]:
    """Seconds of each row (see the module docstring) for the demo's teacher and student."""
    import numpy as np
    import tensorflow as tf

    from bifsmn_tf.models.dfsmn import ModelConfig, build_bifsmn, build_teacher, width_model
    from bifsmn_tf.training.trainer import Distiller

    # The demo's architecture, spelled out so that older checkouts build the same models.
    thresholds = (-0.67, 0.0, 0.67)
    config = ModelConfig(
        num_classes=12, num_frames=32, num_features=32, profile="lean", memory_input="float",
        fe3_input_thresholds=thresholds, fc1_input_thresholds=thresholds,
    )  # fmt: skip
    seconds = {}
    seconds["build teacher"], teacher = _timed(build_teacher, config)
    build_bifsmn(config)
    seconds["build student"], student = _timed(build_bifsmn, config)
    seconds["width model"], _ = _timed(width_model, student, 8, for_lce=True)
    distiller = Distiller(
        student, teacher, widths=(8, 4, 2), width_weights=(1.0, 0.5, 0.25), distill="hed", gamma=0.1,
        logit_distill=0.5,
    )  # fmt: skip
    distiller.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(192, 32, 32)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((features, np.arange(192) % 12)).batch(96)
    seconds["first fit"], _ = _timed(distiller.fit, data, validation_data=data, epochs=1, verbose=0)
    return seconds


def write_table(rows: list[dict], path: Path) -> None:
    names = ["build teacher", "build student", "width model", "first fit"]
    lines = [
        "# Model building and step tracing (`benchmarks/model_build.py`)",
        "",
        "Wall seconds in one process after TensorFlow has loaded; each row is its CPU's.",
        "",
        "| CPU | label | " + " | ".join(names) + " | TF |",
        "|---|---|" + "---:|" * len(names) + "---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r['seconds'][n]:.2f}" for n in names)
        lines.append(f"| {r['cpu']} ({r['cpus']} cores) | {r['label']} | {cells} | {r['tensorflow']} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code-root", type=Path, help="a checkout of the repository to measure instead")
    parser.add_argument("--label", default="", help="what this run measures, for the table")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines to append to")
    args = parser.parse_args(argv)
    if args.code_root:
        _use_checkout(args.code_root.resolve())
    import tensorflow as tf

    import bifsmn_tf
    from bifsmn_tf.bench import host_description

    seconds = measure()
    row = {
        **host_description(),
        "cpus": os.cpu_count(),
        "label": args.label,
        "package": str(Path(bifsmn_tf.__file__).parent),
        "seconds": seconds,
        "tensorflow": tf.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    write_table([json.loads(line) for line in args.out.read_text().splitlines()], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
