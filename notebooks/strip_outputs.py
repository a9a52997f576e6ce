"""Remove outputs, execution counts and run metadata from notebooks before committing them.

python notebooks/strip_outputs.py            # strip every notebooks/*.ipynb in place
python notebooks/strip_outputs.py --check    # list unstripped notebooks, exit 1 if any
python notebooks/strip_outputs.py A.ipynb B.ipynb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parent
# Cell metadata that records a particular execution (timings, scroll state) rather than content.
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def strip(notebook: nbformat.NotebookNode) -> bool:
    """Strip ``notebook`` in place; return whether anything changed."""
    changed = False
    for cell in notebook.cells:
        for key in RUN_METADATA:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs = []
            cell.execution_count = None
            changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any notebook has outputs")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    unstripped = []
    for path in paths:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if strip(notebook):
            unstripped.append(path)
            if not args.check:
                nbformat.write(notebook, path)
    for path in unstripped:
        print(f"{path}: {'has outputs' if args.check else 'stripped'}")
    return 1 if args.check and unstripped else 0


if __name__ == "__main__":
    sys.exit(main())
