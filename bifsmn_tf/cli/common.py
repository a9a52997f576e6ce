"""What every verb of the command line shares: its parser class, number types and errors."""

from __future__ import annotations

import argparse
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any


class CliError(Exception):
    """An error whose message is meant for the user as is (no traceback)."""


class VerbParser(argparse.ArgumentParser):
    """A verb's parser that adds its flags when it is first used: parsed, or its help or usage
    printed.

    The flags read their defaults and choices from the config dataclasses, which live beside
    TensorFlow code; adding every verb's flags up front would make ``bifsmn-tf --help`` import
    TensorFlow.

    Args:
        add_flags: Adds the verb's flags (and its ``handler`` default) to the parser.
    """

    def __init__(
        self, *args: Any, add_flags: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._add_flags = add_flags

    def _with_flags(self) -> None:
        if self._add_flags is not None:
            add_flags, self._add_flags = self._add_flags, None
            add_flags(self)

    def parse_known_args(self, args=None, namespace=None):
        self._with_flags()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._with_flags()
        return super().format_help()

    def format_usage(self) -> str:
        self._with_flags()
        return super().format_usage()


def finite_float(text: str) -> float:
    """Argparse type of every float flag: ``float()`` also accepts ``nan`` and ``inf``, which
    pass range checks written as comparisons and once trained a model of NaN weights."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def defaults_of(function: Callable[..., Any]) -> dict[str, Any]:
    """The default of each keyword parameter of ``function``: what an unset flag leaves."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def shown(value: Any) -> str:
    """``value`` as a user would type it on the command line."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def choices_help(names: Iterable[str]) -> str:
    """``a, b or c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def as_tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    """A list flag's values as the tuple a config holds (``None``: the flag was not given)."""
    return None if values is None else tuple(values)


def check_outputs(*, directory: str | None = None, json_file: str | None = None) -> None:
    """Refuse at start the outputs that could not be written at the end of a long job."""
    from bifsmn_tf.fileio import OutputPathError, check_output

    try:
        if directory is not None:
            check_output(directory, directory=True, what="--out")
        if json_file is not None:
            check_output(json_file, what="--json")
    except OutputPathError as err:
        raise CliError(str(err)) from None


def raise_user_error(err: Exception) -> None:
    """Re-raise the package's own input errors as :class:`CliError`; anything else is a bug:
    re-raise it."""
    from bifsmn_tf.config import ConfigError
    from bifsmn_tf.data.audio import AudioFormatError
    from bifsmn_tf.data.speech_commands import DatasetError
    from bifsmn_tf.fileio import OutputPathError
    from bifsmn_tf.training.run import RunError

    if isinstance(err, (ConfigError, DatasetError, RunError, AudioFormatError, OutputPathError, FileNotFoundError)):
        raise CliError(str(err)) from None
    raise err
