"""Packaging: the conda file and pyproject.toml agree, and ``import bifsmn_tf`` selects Keras 2.

The import checks run in fresh interpreters because Keras 2 vs 3 is decided once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]


def project_table() -> dict:
    with open(REPO / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]


def conda_environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def conda_pip_requirements() -> list[str]:
    pip_sections = [entry["pip"] for entry in conda_environment()["dependencies"] if isinstance(entry, dict)]
    assert len(pip_sections) == 1, f"environment.yml: expected one pip section, got {pip_sections}"
    return pip_sections[0]


def test_conda_pip_section_lists_the_project_dependencies():
    requirements = conda_pip_requirements()
    assert "-e ." in requirements, "environment.yml must install the package itself"
    pinned = [line for line in requirements if line != "-e ."]
    assert sorted(pinned) == sorted(project_table()["dependencies"])


def test_the_gpu_extra_is_the_same_tensorflow_with_cuda_and_the_conda_file_names_it():
    [tensorflow] = [r for r in project_table()["dependencies"] if r.startswith("tensorflow==")]
    gpu = project_table()["optional-dependencies"]["gpu"]
    assert gpu == [tensorflow.replace("tensorflow==", "tensorflow[and-cuda]==")]
    assert f"pip install -e '.[gpu]'    # {gpu[0]}" in (REPO / "environment.yml").read_text()


def test_conda_environment_pins_python_311_and_legacy_keras():
    environment = conda_environment()
    conda_packages = [entry for entry in environment["dependencies"] if isinstance(entry, str)]
    assert "python=3.11" in conda_packages
    assert "pip" in conda_packages
    assert environment["variables"]["TF_USE_LEGACY_KERAS"] == "1"
    assert SpecifierSet(project_table()["requires-python"]).contains("3.11")


def run_python(code: str, legacy_keras_env: bool) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if legacy_keras_env:
        env["TF_USE_LEGACY_KERAS"] = "1"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "prelude, legacy_keras_env",
    [
        ("", False),
        # A conda env sets the variable, so TensorFlow may be imported before the package.
        ("import tensorflow", True),
        # With the variable set first, Keras 3 in the process does not change tf.keras.
        ("import keras", True),
    ],
    ids=["bifsmn-first", "tensorflow-first-with-env", "keras3-first-with-env"],
)
def test_import_selects_keras_2_for_tf_keras_and_larq(prelude, legacy_keras_env):
    code = (
        f"{prelude}\n"
        "import os, sys, bifsmn_tf, larq, tensorflow as tf\n"
        "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.layers.Dense.__module__,\n"
        "      issubclass(larq.layers.QuantConv2D, tf.keras.layers.Conv2D),\n"
        "      'keras' in sys.modules)\n"
    )
    result = run_python(code, legacy_keras_env)
    assert result.returncode == 0, result.stderr
    legacy_flag, dense_module, larq_on_tf_keras, keras3_loaded = result.stdout.split()
    assert legacy_flag == "1"
    assert dense_module.startswith("tf_keras.")
    assert larq_on_tf_keras == "True"
    # The package itself never pulls Keras 3 in.
    assert keras3_loaded == str(prelude == "import keras")


@pytest.mark.parametrize("prelude", ["import keras", "import tensorflow"], ids=["keras-first", "tensorflow-first"])
def test_keras_3_loaded_first_is_a_clear_error(prelude):
    result = run_python(f"{prelude}\nimport bifsmn_tf\n", legacy_keras_env=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("bifsmn_tf.Keras3AlreadyImportedError: Keras 3."), result.stderr
    assert "import bifsmn_tf first" in last_line


def _cli_commands() -> dict[str, str]:
    """Every leaf command of ``bifsmn-tf`` with its one-line help, from the real parser."""
    import argparse

    from bifsmn_tf.cli import build_parser

    commands = {}

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        walk(sub, [*prefix, name])
                    else:
                        commands[" ".join([*prefix, name])] = helps[name]

    walk(build_parser(), ["bifsmn-tf"])
    return commands


def test_readme_cli_reference_lists_every_command_with_its_help():
    readme = (REPO / "README.md").read_text()
    reference = readme.split("### CLI reference", 1)[1].split("\n\n", 2)[1]
    rows = {
        cells[1].strip().strip("`"): cells[2].strip()
        for cells in (line.split("|") for line in reference.splitlines()[2:])
    }
    assert rows == _cli_commands()
