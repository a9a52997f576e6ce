"""deploy/pi_benchmark.py over real SSH: a real ``sshd`` on 127.0.0.1 stands in for the Pi.

The test starts ``/usr/sbin/sshd`` (Debian package ``openssh-server``) as the current user with
host and user keys made in ``tmp_path``, and copies a stand-in for ``lce_benchmark_model`` (a small
script that prints the tool's output format) with ``--binary``, as a user would copy the real
aarch64 binary. The stand-in derives its latency from the size of the graph it finds on the
"device", so the numbers in the report prove that each file was copied, that each run got the
right ``--graph`` and ``--num_threads``, and that the output was parsed and attributed correctly.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf
from stream_models import manifest_entry, write_manifest

import bifsmn_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from bifsmn_tf.records import KIND_FP32, KIND_INT8, KIND_STUDENT, MANIFEST, ConversionManifest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "deploy" / "pi_benchmark.py"
SSHD = Path("/usr/sbin/sshd")

# The stand-in for the Pi's lce_benchmark_model: same flags, same output lines (written to stderr
# with the INFO: prefix, as TFLite's logger does), latency = 100 us + 10 us per KB / threads.
STAND_IN = textwrap.dedent(
    """\
    #!{python}
    # Stand-in for the Pi's lce_benchmark_model in tests: prints the tool's output format.
    import os, sys
    flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
    size = os.path.getsize(flags["graph"])
    threads = int(flags["num_threads"])
    runs = int(flags["num_runs"])
    avg = 100.0 + size / 100.0 / threads
    log = lambda line: print("INFO: " + line, file=sys.stderr)
    log("STARTING!")
    log("Graph: [%s]" % flags["graph"])
    log("The input model file size (MB): %g" % (size / 1e6))
    log("Initialized session in 1.5ms.")
    log("Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.")
    log("count=20 first=%d curr=%d min=%d max=%d avg=%g std=3" % (2 * avg, avg, avg, 2 * avg, avg * 1.01))
    print("", file=sys.stderr)
    log("Running benchmark for at least %d iterations and at least 1 seconds but terminate if exceeding 150 seconds." % runs)
    log("count=%d first=%d curr=%d min=%d max=%d avg=%g std=2" % (runs, avg, avg, avg, avg, avg))
    print("", file=sys.stderr)
    log("Inference timings in us: Init: 1500, First inference: %g, Warmup (avg): %g, Inference (avg): %g" % (2 * avg, avg * 1.01, avg))
    log("Memory footprint delta from the start of the tool (MB): init=0.5 overall=1.25")
    if flags.get("enable_op_profiling") == "true":
        ms = avg / 1000.0
        log("Operator-wise Profiling Info for Regular Benchmark Runs:")
        print("Primary graph profile:", file=sys.stderr)
        print("============================== Summary by node type ==============================", file=sys.stderr)
        print("      [Node type]   [count]   [avg ms]   [avg %]   [cdf %]   [mem KB]   [times called]", file=sys.stderr)
        for name, count, share, cdf in (("LceBconv2d", 18, 0.6, 60), ("PRELU", 27, 0.25, 85), ("FULLY_CONNECTED", 1, 0.15, 100)):
            print("%17s %9d %10.4f %8.3f%% %8.3f%% %10.3f %16d" % (name, count, ms * share, 100 * share, cdf, 0, count), file=sys.stderr)
    """
)


def _stand_in_latency_ms(size: int, threads: int) -> float:
    return (100.0 + size / 100.0 / threads) / 1000.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def pi_stand_in(tmp_path):
    """A real sshd on 127.0.0.1 playing the Pi; yields the runner's SSH flags."""
    for tool in ("ssh", "scp", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` not installed (Debian package openssh-client)")
    if not SSHD.exists():
        pytest.skip(f"{SSHD} not installed (Debian package openssh-server): the SSH path is untested")
    if os.geteuid() == 0:
        # sshd run by root insists on its privilege-separation directory (systemd creates it).
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        except OSError as err:
            pytest.skip(f"sshd as root needs /run/sshd and it cannot be created: {err}")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    port = _free_port()
    (keys / "known_hosts").write_text(f"[127.0.0.1]:{port} {(keys / 'host_key.pub').read_text()}")
    config = keys / "sshd_config"
    config.write_text(
        textwrap.dedent(
            f"""\
            ListenAddress 127.0.0.1
            HostKey {keys / "host_key"}
            AuthorizedKeysFile {keys / "user_key.pub"}
            PidFile {keys / "sshd.pid"}
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin prohibit-password
            Subsystem sftp internal-sftp
            """
        )
    )
    sshd = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if sshd.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {sshd.stderr.read() if sshd.poll() is not None else 'timeout'}")
                time.sleep(0.1)
        yield [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--user",
            pwd.getpwuid(os.geteuid()).pw_name,
            "--identity",
            str(keys / "user_key"),
            "--ssh-option",
            f"UserKnownHostsFile={keys / 'known_hosts'}",
            "--ssh-option",
            "StrictHostKeyChecking=yes",
        ]
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


def _tiny_flatbuffer(units: int) -> bytes:
    model = tf.keras.Sequential([tf.keras.Input((32,)), tf.keras.layers.Dense(units), tf.keras.layers.Dense(12)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Three real flatbuffers of different sizes under a manifest in `bifsmn-tf convert`'s schema."""
    directory = tmp_path_factory.mktemp("flatbuffers")
    models = []
    for file, kind, width, units in (
        ("student_w8.tflite", KIND_STUDENT, 8, 16),
        ("teacher_fp32.tflite", KIND_FP32, None, 512),
        ("teacher_int8.tflite", KIND_INT8, None, 128),
    ):
        (directory / file).write_bytes(_tiny_flatbuffer(units))
        models.append(manifest_entry(directory, file, kind, width))
    write_manifest(directory, models)
    return directory


def _stand_in_binary(tmp_path: Path) -> Path:
    binary = tmp_path / "lce_benchmark_model_stand_in"
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    return binary


def _run_runner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("threads", [["1"], ["1", "4"]])
def test_runner_reports_stand_in_latencies_over_real_ssh(pi_stand_in, models_dir, tmp_path, threads):
    out = tmp_path / "report"
    remote_dir = tmp_path / "pi_home" / "bifsmn-bench"
    result = _run_runner(
        str(models_dir),
        *pi_stand_in,
        "--binary",
        str(_stand_in_binary(tmp_path)),
        "--remote-dir",
        str(remote_dir),
        "--threads",
        *threads,
        "--runs",
        "30",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr

    # The "device" holds byte-identical copies of the flatbuffers and the binary under its name.
    manifest = ConversionManifest.load(models_dir / MANIFEST).models
    for entry in manifest:
        assert (remote_dir / entry.file).read_bytes() == (models_dir / entry.file).read_bytes()
    assert os.access(remote_dir / "lce_benchmark_model", os.X_OK)

    report = json.loads((out / "pi_benchmark.json").read_text())
    assert report["device"]["machine"] == platform.machine()
    results = {(r["file"], r["threads"]): r for r in report["results"]}
    assert set(results) == {(m.file, int(t)) for m in manifest for t in threads}
    for (_, t), r in results.items():
        expected_ms = _stand_in_latency_ms(r["bytes"], t)
        assert r["latency_ms"] == pytest.approx(expected_ms, rel=1e-5)
        assert r["output"]["inference_stats"]["count"] == 30
        assert f"--num_threads={t}" in r["command"] and "--num_runs=30" in r["command"]
        fp32 = results[("teacher_fp32.tflite", t)]
        int8 = results[("teacher_int8.tflite", t)]
        assert r["speedup_vs_fp32"] == pytest.approx(fp32["latency_ms"] / r["latency_ms"])
        assert r["speedup_vs_int8"] == pytest.approx(int8["latency_ms"] / r["latency_ms"])
        assert r["size_ratio_vs_fp32"] == pytest.approx(fp32["bytes"] / r["bytes"])
        # The profiling pass: the stand-in splits its latency 60/25/15 over three node types.
        profile = r["op_profile_ms"]
        assert set(profile) == {"LceBconv2d", "PRELU", "FULLY_CONNECTED"}
        assert profile["LceBconv2d"] == pytest.approx(0.6 * expected_ms, abs=1e-4)
    student = results[("student_w8.tflite", int(threads[0]))]
    assert student["speedup_vs_fp32"] > 1 and student["size_ratio_vs_fp32"] > 1

    markdown = (out / "pi_benchmark.md").read_text()
    assert report["device"]["model"] in markdown
    for entry in manifest:
        assert f"`{entry.file}`" in markdown
    assert f"{student['latency_ms']:.3f}" in markdown and f"{student['speedup_vs_fp32']:.2f}×" in markdown
    if platform.machine() != "aarch64":
        assert "not Raspberry Pi" in markdown
    assert (out / "pi_benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert len(logs) == 2 * len(manifest) * len(threads)


def test_runner_names_the_missing_binary(pi_stand_in, models_dir, tmp_path):
    result = _run_runner(
        str(models_dir),
        *pi_stand_in,
        "--remote-dir",
        str(tmp_path / "empty_pi"),
        "--threads",
        "1",
        "--out",
        str(tmp_path / "report"),
    )
    assert result.returncode == 1
    assert "lce_benchmark_model" in result.stderr and "deploy/README.md" in result.stderr
    assert not (tmp_path / "report" / "pi_benchmark.json").exists()


def test_runner_names_the_damaged_field_of_a_manifest(models_dir, tmp_path):
    models = Path(shutil.copytree(models_dir, tmp_path / "models"))
    manifest = json.loads((models / MANIFEST).read_text())
    manifest["models"][1]["bytes"] = "512 KB"
    (models / MANIFEST).write_text(json.dumps(manifest))
    result = _run_runner(str(models), "--host", "127.0.0.1", "--out", str(tmp_path / "report"))
    assert result.returncode == 1
    assert "manifest.json: 'models[1].bytes' must be an integer, got '512 KB'" in result.stderr
    assert "bifsmn-tf convert" in result.stderr


def test_runner_rejects_a_directory_without_manifest(tmp_path):
    result = _run_runner(str(tmp_path), "--host", "127.0.0.1", "--out", str(tmp_path / "report"))
    assert result.returncode == 1
    assert "manifest.json not found" in result.stderr and "bifsmn-tf convert" in result.stderr
