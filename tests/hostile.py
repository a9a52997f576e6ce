"""The table format of the hostile-input tests (``tests/test_hostile_*.py``).

Each of those modules holds a table of :class:`Case` rows: a command line as a careless or
hostile user would type it, against files a fixture has damaged on purpose, and what must come
back: a one-line error that names the culprit (exit 2, no traceback), or the documented
behaviour. ``bifsmn_tf.cli.main`` runs in-process so that a row costs no TensorFlow start-up; an
exception that escapes ``main`` is a failed row, not a crashed test session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bifsmn_tf.cli import main


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        id: the pytest id; says what is wrong with the input.
        argv: builds the command line from the paths the module's fixture prepared (``paths``)
            and a fresh per-case directory (``tmp``); it may damage files under ``tmp`` first.
        code: the exit code expected (2: a usage error; 0: the input is fine after all).
        expect: regular expressions the error output (``code`` 2) or the whole output must hold.
        check: optional extra assertion on ``(paths, tmp)`` afterwards (nothing corrupted, ...).
    """

    id: str
    argv: Callable[[dict[str, Path], Path], Sequence[str]]
    code: int = 2
    expect: tuple[str, ...] = ()
    check: Callable[[dict[str, Path], Path], Any] | None = None


@dataclasses.dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def run_cli(argv: Sequence[str]) -> CliResult:
    """``bifsmn-tf ARGV`` in this process; an exception escaping ``main`` becomes exit code 99
    with its traceback as the error output (argparse's own ``SystemExit`` keeps its code)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # noqa: BLE001 - the point: an escaped exception is a failed row
            code = 99
            err.write(traceback.format_exc())
    return CliResult(code, out.getvalue(), err.getvalue())


def check_case(case: Case, paths: dict[str, Path], tmp: Path) -> CliResult:
    """Run one row and assert its outcome."""
    argv = list(case.argv(paths, tmp))
    result = run_cli(argv)
    shown = f"bifsmn-tf {' '.join(map(str, argv))}\nexit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    assert result.code == case.code, shown
    assert "Traceback" not in result.err, shown
    if case.code == 2:
        # One clear line: the verb's prefix (or argparse's usage), never a stack of frames.
        assert re.search(r"error: ", result.err), shown
    text = result.err if case.code != 0 else result.out + result.err
    for pattern in case.expect:
        assert re.search(pattern, text, flags=re.IGNORECASE | re.DOTALL), f"no /{pattern}/ in:\n{shown}"
    if case.check is not None:
        case.check(paths, tmp)
    return result


def ids(cases: Sequence[Case]) -> list[str]:
    return [case.id for case in cases]
