"""``benchmarks/train_throughput.py`` runs and writes its rows (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


@pytest.mark.slow  # builds and steps both models twice; about a minute
def test_throughput_benchmark_appends_rows_and_rewrites_its_table(tmp_path):
    out = tmp_path / "throughput.jsonl"
    out.write_text(
        json.dumps(
            {
                "label": "earlier",
                "cpu": "x",
                "cpus": 1,
                "tensorflow": "0",
                "jit": False,
                "intra_threads": 0,
                "inter_threads": 0,
                "teacher_batch": 8,
                "student_batch": 8,
                "steps": 1,
                "measurement": "teacher step",
                "examples_per_second": 1.0,
                "cores_used": 1.0,
                "seconds": 1.0,
                "examples": 1,
            }
        )
        + "\n"
    )
    argv = [sys.executable, str(SCRIPT), "--steps", "2", "--batch-size", "8", "--label", "smoke", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["earlier", "smoke", "smoke"], "rows are appended"
    assert [r["measurement"] for r in rows[1:]] == ["teacher step", "student step"]
    for row in rows[1:]:
        assert row["examples"] == 16 and row["examples_per_second"] > 0 and row["cores_used"] > 0
        assert row["student_batch"] == row["teacher_batch"] == 8 and row["cpu"]
    table = out.with_suffix(".md").read_text()
    assert table.count("| smoke |") == 2 and "| earlier |" in table
