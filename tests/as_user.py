"""Run ``bifsmn-tf`` commands as another user: ``python as_user.py UID COMMANDS_JSON``.

CI runs as root, and root reads every file whatever its mode: a model saved unreadable to
others (a directory left 0644 or 0700) passes every test run as root. This runner starts as root,
imports what the commands need, then drops to UID before running each command of the JSON list
of ``[expected exit code, argv]`` pairs in turn, printing ``exit N: ARGV`` per command and stopping
(exit 1) at the first whose exit code is not the expected one. It imports first because the
interpreter may live where UID cannot read (pyenv under a 0700 /root); the files the commands
open are checked against UID's permissions.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import warnings

#: Standard modules never imported ahead: GUIs, demos, test suites, other platforms'.
_NOT_PRELOADED = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "venv",
    "pydoc_data",
    "test",
    "__phello__",
    "unittest",
    "distutils",
    "msilib",
    "winreg",
    "winsound",
    "_winapi",
    "nt",
    "msvcrt",
}


def _import_everything(names) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a module this platform lacks
                continue
            for sub in pkgutil.walk_packages(getattr(module, "__path__", []), f"{name}."):
                if {"test", "tests", "__main__", "idle_test"} & set(sub.name.split(".")):
                    continue
                try:
                    importlib.import_module(sub.name)
                except BaseException:  # noqa: BLE001 - optional parts (GUI, other platforms)
                    continue


def main() -> int:
    uid = int(sys.argv[1])
    commands = json.loads(sys.argv[2])
    _import_everything(sorted(sys.stdlib_module_names - _NOT_PRELOADED))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import bifsmn_tf  # noqa: F401  (Keras 2 before TensorFlow loads)

    _import_everything(["bifsmn_tf"])
    from bifsmn_tf import cli

    cli.build_parser()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    for expected, argv in commands:
        code = cli.main(argv)
        print(f"exit {code}: {' '.join(argv)}", flush=True)
        if code != expected:
            print(f"expected exit {expected}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
