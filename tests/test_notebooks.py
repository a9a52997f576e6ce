"""The notebooks run top to bottom at small scale, and are committed without outputs."""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

import nbformat
import pytest
from conftest import load_script
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 600
# A top-level call of the notebooks' figure helpers, or a PNG displayed directly: such a cell
# must show a figure (indented calls are the helpers' own definitions).
FIGURE_CALL = re.compile(r"^(?:\w+ = )?(?:show|show_confusions|plot_curves)\(|^display\(Image\(", re.M)


def _load_strip_script():
    return load_script(NOTEBOOKS_DIR / "strip_outputs.py")


def test_all_five_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs: run notebooks/strip_outputs.py"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_imports_bifsmn_tf_before_tensorflow(path: Path):
    first_code = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert first_code.source.startswith("import bifsmn_tf"), path.name


def test_strip_script_removes_outputs_and_counts(tmp_path: Path):
    strip_outputs = _load_strip_script()
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    code.execution_count = 3
    code.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(notebook, path)

    assert strip_outputs.main(["--check", str(path)]) == 1
    assert nbformat.read(path, as_version=4) == notebook  # --check changes nothing
    assert strip_outputs.main([str(path)]) == 0
    assert strip_outputs.main(["--check", str(path)]) == 0
    stripped = nbformat.read(path, as_version=4)
    assert stripped == nbformat.read(NOTEBOOKS[0], as_version=4)


def _children_cpu_seconds() -> float:
    """CPU time of this process's finished children: a notebook's kernel (and its workers) once
    it has shut down. It depends far less than wall time on what else the machine runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def shared_work_dir(tmp_path_factory) -> Path:
    """One work directory for all notebooks, so each reuses what the previous ones made."""
    return tmp_path_factory.mktemp("notebook-work")


# In the default run (`make test`), in order 01 -> 05: 01 makes the data set, 02 the teacher, 03
# the student, 04 the flatbuffers, and each later notebook reuses them from the shared work dir.
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_small_scale(path: Path, shared_work_dir: Path, tmp_path: Path, monkeypatch, record_property):
    monkeypatch.setenv("BIFSMN_NOTEBOOK_SCALE", "small")
    monkeypatch.setenv("BIFSMN_NOTEBOOK_WORK", str(shared_work_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started, cpu_before = time.monotonic(), _children_cpu_seconds()
    client.execute()  # raises CellExecutionError naming the failing cell
    wall, cpu = time.monotonic() - started, _children_cpu_seconds() - cpu_before
    # conftest prints it in the run's summary, also from an xdist worker.
    record_property("summary_line", f"{path.name}: executed in {wall:.0f} s ({cpu:.0f} s CPU)")
    figure_cells = [cell for cell in notebook.cells if cell.cell_type == "code" and FIGURE_CALL.search(cell.source)]
    assert figure_cells, f"{path.name}: no cell draws a figure"
    for cell in figure_cells:
        assert any("image/png" in output.get("data", {}) for output in cell.outputs), (
            f"{path.name}: this cell drew no figure:\n{cell.source}"
        )
