"""Fixtures shared by the test modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from bifsmn_tf.data.synthetic import SynthConfig, generate

#: The small synthetic set: 4 speakers (2 training, 1 validation, 1 test) saying the 30 v1 words,
#: with the two engines every install has. Background recordings of 10 s: the shortest whose
#: 10 % test stretch still holds a 1-s crop (the ``standard`` protocol's silence).
SMALL_SYNTH = SynthConfig(words="v1", clips_per_word=4, seed=0, engines=("espeak", "pico"), background_seconds=10.0)


#: The repository's benchmark scripts, which some tests import.
BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """The Python script at ``path`` (a benchmark, a notebook helper), imported as a module."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small synthetic v1 set in the Speech Commands layout (``SMALL_SYNTH``).

    Shared by the whole session: read it, never modify it.
    """
    root = tmp_path_factory.mktemp("synth") / "v1"
    generate(root, SMALL_SYNTH, jobs=1, progress=False)
    return root


def pytest_terminal_summary(terminalreporter) -> None:
    """Prints what tests recorded with ``record_property("summary_line", text)`` (the notebooks'
    timings): unlike a test's own output, it reaches the log from xdist workers too."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "summary_line"
    ]
    if lines:
        terminalreporter.section("recorded by the tests")
        for line in lines:
            terminalreporter.write_line(line)
