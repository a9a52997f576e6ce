"""The code is formatted and linted as ``[tool.ruff]`` in pyproject.toml says (``ruff format``,
``ruff check``): run them on the whole repository and fail with ruff's own report."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [["check", "--no-fix", "--output-format", "concise"], ["format", "--check", "--diff"]],
    ids=["lint", "format"],
)
def test_repository_passes_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (
        f"ruff {command[0]} found problems (fix with `ruff {command[0]}`"
        + (" --fix" if command[0] == "check" else "")
        + f"):\n{result.stdout}{result.stderr}"
    )
