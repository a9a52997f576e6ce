"""The ``bifsmn-tf`` command line: thin verbs that parse flags, call one stage and print.

The verbs are grouped by stage: :mod:`~bifsmn_tf.cli.data` (``data download``, ``data synth``),
:mod:`~bifsmn_tf.cli.training` (``train-teacher``, ``train``, ``evaluate``, ``demo``) and
:mod:`~bifsmn_tf.cli.deploy` (``convert``, ``bench``, ``listen``). A verb's flags are added when
it is used (:class:`~bifsmn_tf.cli.common.VerbParser`), so ``bifsmn-tf --help`` imports no
TensorFlow, while every default and choice a flag shows is read from the config it sets.

Conventions shared by every verb: times are in milliseconds, and the flag says so (``--hop-ms``);
a list is space-separated (``--widths 8 4 2``, ``--fe3-input-thresholds -0.67 0 0.67``);
``--data`` is a dataset root in the Speech Commands layout to read, ``--out`` what the verb writes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bifsmn_tf import __version__
from bifsmn_tf.cli import data, deploy, training
from bifsmn_tf.cli.common import CliError, VerbParser

#: The verb groups, in pipeline order.
_GROUPS = (data, training, deploy)


def build_parser() -> argparse.ArgumentParser:
    """The ``bifsmn-tf`` parser with every verb (each verb's flags are added on first use)."""
    parser = argparse.ArgumentParser(
        prog="bifsmn-tf",
        description=(
            "BiFSMN 1-bit keyword spotting: data -> features -> FP teacher -> binary student "
            "(HED distillation, thinnable depth) -> LCE flatbuffers -> Raspberry Pi."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bifsmn-tf {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=VerbParser)
    verbs.required = True
    for group in _GROUPS:
        group.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``bifsmn-tf`` command; returns its exit status (2 for a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except CliError as err:
        verb = " ".join(filter(None, (args.verb, getattr(args, "data_verb", None))))
        print(f"bifsmn-tf {verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["CliError", "build_parser", "main"]
