"""Training throughput of the demo's recipe: examples per second and CPU cores kept busy.

Three measurements, each over ``--steps`` optimizer steps after a warm-up epoch of the same
length (tracing, autotuning):

- ``teacher step`` and ``student step``: ``Distiller.fit`` on a few in-memory batches of random
  features, so only the model's step is timed (the demo's teacher and student: widths 8/4/2,
  HED, soft labels, fe3/fc1 thresholds, float memory input);
- ``input pipeline``: batches of ``make_dataset(..., training=True)`` of ``--data`` (decode
  cache, augmentation, features), consumed and thrown away;
- ``student epoch``: the student step fed by that pipeline, what ``bifsmn-tf train`` does.

Cores used = the process's CPU time / wall time over the measured steps. Settings under test are
flags (``--jit``, ``--intra-threads``, ``--inter-threads``, ``--batch-size``); each invocation
appends one row per measurement to ``--out`` (JSON lines) and rewrites the Markdown table beside
it, with the CPU model, the thread settings and the TensorFlow version, so runs on different
machines and settings land in one table::

    python benchmarks/train_throughput.py --data bifsmn-demo/data --label "as shipped"
    python benchmarks/train_throughput.py --data bifsmn-demo/data --jit --label "XLA"

Timings are for the CPU they were measured on; run with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bifsmn_tf.bench import Stopwatch, host_description  # noqa: E402  (after the Keras 2 switch)

DEFAULT_OUT = Path(__file__).parent / "results" / "train_throughput.jsonl"


def _row(name: str, examples: int, wall: float, cpu: float) -> dict:
    return {
        "measurement": name,
        "examples_per_second": round(examples / wall, 1),
        "cores_used": round(cpu / wall, 2),
        "seconds": round(wall, 2),
        "examples": examples,
    }


def _fit_timed(distiller, dataset, steps: int, batch_size: int) -> tuple[float, float]:
    """Wall and CPU seconds of the second of two ``steps``-step epochs of ``distiller.fit``."""
    import tensorflow as tf

    times: list[Stopwatch] = []

    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(Stopwatch().start())

        def on_epoch_end(self, epoch, logs=None):
            times[-1].stop()

    distiller.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[Timer()], verbose=0)
    return times[1].wall, times[1].cpu


def measure(args: argparse.Namespace) -> list[dict]:
    import tensorflow as tf

    if args.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
    if args.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)

    from bifsmn_tf.data.pipeline import make_dataset
    from bifsmn_tf.models.dfsmn import build_bifsmn, build_teacher
    from bifsmn_tf.training.presets import PRESETS
    from bifsmn_tf.training.trainer import Distiller, build_optimizer

    preset = PRESETS["demo"]
    features = preset.features
    # The demo's models, as `bifsmn_tf.training.run` builds them from the preset.
    model = preset.model.replace(num_frames=features.num_frames, num_features=features.num_features)
    teacher_model = model.for_teacher()
    student_model = model.replace(widths=preset.student.widths)
    student_train = preset.student
    teacher_train = preset.teacher.for_teacher(model.num_blocks)
    if args.batch_size:
        student_train = student_train.replace(batch_size=args.batch_size)
        teacher_train = teacher_train.replace(batch_size=args.batch_size)

    def distiller(student, teacher, config):
        model = Distiller.for_recipe(student, teacher, config)
        model.compile(optimizer=build_optimizer(config), jit_compile=args.jit)
        return model

    def random_batches(batch_size: int) -> tf.data.Dataset:
        shape = (8 * batch_size, features.num_frames, features.num_features)
        inputs = tf.random.stateless_normal(shape, seed=(1, 2))
        labels = tf.random.stateless_uniform((shape[0],), (3, 4), maxval=12, dtype=tf.int32)
        return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).cache().repeat()

    rows = []
    teacher = build_teacher(teacher_model)
    wall, cpu = _fit_timed(
        distiller(teacher, None, teacher_train),
        random_batches(teacher_train.batch_size),
        args.steps,
        teacher_train.batch_size,
    )
    rows.append(_row("teacher step", args.steps * teacher_train.batch_size, wall, cpu))

    student = distiller(build_bifsmn(student_model), teacher, student_train)
    wall, cpu = _fit_timed(student, random_batches(student_train.batch_size), args.steps, student_train.batch_size)
    rows.append(_row("student step", args.steps * student_train.batch_size, wall, cpu))

    if args.data:
        data = preset.data.replace(
            protocol=args.protocol,
            root=str(Path(args.data).resolve()),
            data_dir=args.data_home,
            batch_size=student_train.batch_size,
        )
        pipeline = make_dataset(data, features, "train", training=True)
        iterator = iter(pipeline.repeat())
        for _ in range(args.steps):  # warm-up: tracing, autotune
            next(iterator)
        with Stopwatch() as clock:
            for _ in range(args.steps):
                next(iterator)
        rows.append(_row("input pipeline", args.steps * student_train.batch_size, clock.wall, clock.cpu))
        wall, cpu = _fit_timed(student, pipeline.repeat(), args.steps, student_train.batch_size)
        rows.append(_row("student epoch", args.steps * student_train.batch_size, wall, cpu))

    settings = {
        "label": args.label,
        "cpu": host_description()["cpu"],
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "jit": args.jit,
        "intra_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "teacher_batch": teacher_train.batch_size,
        "student_batch": student_train.batch_size,
        "steps": args.steps,
    }
    return [settings | row for row in rows]


def write_table(rows: list[dict], path: Path) -> None:
    lines = [
        "# Training throughput (`benchmarks/train_throughput.py`)",
        "",
        "Examples per second and cores used (process CPU time / wall time); threads 0 = "
        "TensorFlow's default (one per core). Each row is its CPU's, measured with the machine "
        "otherwise idle unless its label says otherwise; two runs of one setting have differed by "
        "up to a quarter on a shared virtual machine.",
        "",
        "| CPU | label | measurement | batch | XLA | intra/inter threads | examples/s | cores used | TF |",
        "|---|---|---|---:|---|---|---:|---:|---|",
    ]
    for r in rows:
        batch = r["teacher_batch"] if r["measurement"].startswith("teacher") else r["student_batch"]
        lines.append(
            f"| {r['cpu']} ({r['cpus']} cores) | {r['label']} | {r['measurement']} | {batch} | "
            f"{'yes' if r['jit'] else 'no'} | {r['intra_threads']}/{r['inter_threads']} | "
            f"{r['examples_per_second']:,.0f} | {r['cores_used']:.2f} | {r['tensorflow']} |"
        )
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="a dataset root (the demo's data/) for the pipeline rows")
    parser.add_argument("--data-home", metavar="DIR", help="where the decoded-audio cache lives (default: as training)")
    parser.add_argument("--protocol", default="standard", choices=("standard", "bifsmn"))
    parser.add_argument("--steps", type=int, default=30, help="measured steps (after as many warm-up)")
    parser.add_argument("--batch-size", type=int, help="both models' batch (default: the demo preset's)")
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    parser.add_argument("--intra-threads", type=int, default=0, help="TensorFlow intra-op threads")
    parser.add_argument("--inter-threads", type=int, default=0, help="TensorFlow inter-op threads")
    parser.add_argument("--label", default="", help="what this run tries, for the table")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines to append to")
    args = parser.parse_args(argv)
    rows = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr)
    write_table([json.loads(line) for line in args.out.read_text().splitlines()], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
