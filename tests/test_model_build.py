"""``benchmarks/model_build.py`` measures the installed package or another checkout and writes its
rows (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "model_build.py"


@pytest.mark.slow  # builds the demo's models and traces the student's step twice: about a minute
def test_model_build_benchmark_measures_a_checkout_and_writes_its_table(tmp_path):
    out = tmp_path / "build.jsonl"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    # A copy of the package under another root: the benchmark must import it, not the install.
    subprocess.run(["cp", "-r", str(REPO / "bifsmn_tf"), str(checkout)], check=True)
    probe = "import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    for label, extra in (("installed", []), ("checkout", ["--code-root", str(checkout)])):
        result = subprocess.run(
            [sys.executable, "-c", probe, str(SCRIPT), "--label", label, "--out", str(out), *extra],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["installed", "checkout"]
    assert rows[0]["package"] == str(REPO / "bifsmn_tf")
    assert rows[1]["package"] == str(checkout / "bifsmn_tf")
    for row in rows:
        assert set(row["seconds"]) == {"build teacher", "build student", "width model", "first fit"}
        assert all(seconds > 0 for seconds in row["seconds"].values())
    table = out.with_suffix(".md").read_text()
    assert "| installed |" in table and "| checkout |" in table
