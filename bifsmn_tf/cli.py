"""The ``bifsmn-tf`` command line: thin verbs that parse flags, call one stage and print.

Each verb is registered by a ``_register_<verb>(subparsers)`` function below; heavy imports
(TensorFlow) happen inside the handlers so that ``bifsmn-tf --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bifsmn_tf import __version__


class CliError(Exception):
    """An error whose message is meant for the user as is (no traceback)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bifsmn-tf",
        description=(
            "BiFSMN 1-bit keyword spotting: data -> features -> FP teacher -> binary student "
            "(HED distillation, thinnable depth) -> LCE flatbuffers -> Raspberry Pi."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bifsmn-tf {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    for register in _REGISTRY:
        register(verbs)
    return parser


# --- verbs -------------------------------------------------------------------------------------
# Each stage adds one `_register_*` function here and appends it to _REGISTRY.


def _register_data(verbs) -> None:
    parser = verbs.add_parser(
        "data",
        help="get or make a dataset in the Speech Commands layout",
        description="Datasets in the Speech Commands layout: download the real one, or synthesize one.",
    )
    sub = parser.add_subparsers(dest="data_verb", metavar="DATA_VERB")
    sub.required = True
    for register in _DATA_REGISTRY:
        register(sub)


_DATA_REGISTRY: list = []
_REGISTRY: list = [_register_data]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as err:
        print(f"bifsmn-tf {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
