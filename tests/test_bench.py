"""bifsmn_tf.bench: the lce_benchmark_model output parser on real samples, host latency, and the
stopwatch of the demo's steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bifsmn_tf import bench
from bifsmn_tf.bench import BenchmarkOutputError, parse_benchmark_output, parse_op_profile

SAMPLES = Path(__file__).parent / "data" / "lce_benchmark_model"


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# Each real sample with the numbers its timing line prints (SOURCES.md says where each comes from).
TIMED_SAMPLES = {
    "xnnpack_issue999_raspberry_pi_head.txt": dict(
        init_us=18777, first_inference_us=64791, warmup_avg_us=57758.2, inference_avg_us=55043.2
    ),
    "kws_streaming_issue802_android_head.txt": dict(
        init_us=17851, first_inference_us=2104, warmup_avg_us=1041.15, inference_avg_us=1039.66
    ),
    "tf_issue42507_android_head.txt": dict(
        init_us=855, first_inference_us=49060, warmup_avg_us=34825.1, inference_avg_us=33209.4
    ),
    "tf_issue62775_x86_info_prefix_head.txt": dict(
        init_us=630, first_inference_us=3678, warmup_avg_us=3751.66, inference_avg_us=3790.92
    ),
}


@pytest.mark.parametrize("name", sorted(TIMED_SAMPLES))
def test_timing_line_of_real_samples(name):
    parsed = parse_benchmark_output(_sample(name))
    for field, value in TIMED_SAMPLES[name].items():
        assert getattr(parsed, field) == pytest.approx(value)
    # The tool prints each block's average twice: in its count= line and in the summary line.
    assert parsed.inference_stats["avg"] == pytest.approx(parsed.inference_avg_us)
    assert parsed.warmup_stats["avg"] == pytest.approx(parsed.warmup_avg_us)
    assert parsed.inference_stats["count"] > 1 and parsed.inference_stats["min"] <= parsed.inference_avg_us
    assert parsed.model_size_mb > 0


@pytest.mark.parametrize(
    "name, init_mb, overall_mb",
    [
        (
            "xnnpack_issue999_raspberry_pi_head.txt",
            8.97656,
            18.7227,
        ),  # "Memory footprint delta ..."
        ("tf_issue42507_android_head.txt", 0.0, 12.8672),  # "Peak memory footprint ..."
    ],
)
def test_both_memory_line_wordings(name, init_mb, overall_mb):
    parsed = parse_benchmark_output(_sample(name))
    assert (parsed.memory_init_mb, parsed.memory_overall_mb) == pytest.approx((init_mb, overall_mb))


def test_old_one_line_summary_and_tab_separated_profile():
    text = _sample("tf_readme_mobilenet_op_profile.txt")
    parsed = parse_benchmark_output(text)
    assert (parsed.warmup_avg_us, parsed.init_us, parsed.inference_avg_us) == pytest.approx((83235, 38467, 79760.9))
    executed = int(re.search(r"Number of nodes executed: (\d+)", text).group(1))
    assert len(parsed.run_order) == executed
    assert sum(record.count for record in parsed.node_types) == executed
    assert parsed.run_order[0].node_type == "CONV_2D"
    assert parsed.run_order[0].name == "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]"
    assert parsed.run_order[-1].node_type == "SOFTMAX"
    by_type = parsed.node_type_ms()
    assert set(by_type) == {"CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX", "RESHAPE", "AVERAGE_POOL_2D"}
    assert by_type["CONV_2D"] == pytest.approx(1.406)
    # Percentages of the node-type summary add up to the whole.
    assert sum(record.percent for record in parsed.node_types) == pytest.approx(100.0)


def test_space_aligned_profile_of_the_primary_graph_only():
    # The initialization profile's summary (AllocateTensors) precedes the regular-runs header and
    # must not be taken for the model's.
    run_order, node_types = parse_op_profile(_sample("tf_issue62775_x86_primary_graph_fragment.txt"))
    assert [r.node_type for r in run_order] == ["RANDOM_UNIFORM", "TRANSPOSE"]
    assert run_order[1].name == "[transpose]:1"
    assert run_order[1].avg_ms == pytest.approx(0.031) and run_order[1].times_called == 1
    assert node_types == ()


def test_lce_tool_table_with_fewer_columns():
    run_order, _ = parse_op_profile(_sample("lce_pr69_raspberry_pi3_fragment.txt"))
    assert [r.node_type for r in run_order].count("Bconv2d64") == 4
    assert run_order[0].avg_ms == pytest.approx(1.016)


@pytest.mark.parametrize(
    "name",
    ["lce_pr69_raspberry_pi3_fragment.txt", "tf_issue62775_x86_primary_graph_fragment.txt"],
)
def test_output_without_an_inference_average_is_rejected(name):
    with pytest.raises(BenchmarkOutputError, match="Inference \\(avg\\)"):
        parse_benchmark_output(_sample(name))


def test_a_failed_run_is_rejected_quoting_its_end():
    text = _sample("xnnpack_issue999_raspberry_pi_head.txt")
    cut = text[: text.index("Inference timings")] + "ERROR: Node number 3 (LceBconv2d) failed to invoke.\n"
    with pytest.raises(BenchmarkOutputError, match="failed to invoke"):
        parse_benchmark_output(cut)


def test_scientific_notation():
    text = _sample("xnnpack_issue999_raspberry_pi_head.txt").replace(
        "Warmup (avg): 57758.2, Inference (avg): 55043.2",
        "Warmup (avg): 1.04176e+06, Inference (avg): 9.5e+05",
    )
    parsed = parse_benchmark_output(text)
    assert (parsed.warmup_avg_us, parsed.inference_avg_us) == (1.04176e06, 9.5e05)


def test_to_dict_is_json_serializable():
    parsed = parse_benchmark_output(_sample("tf_readme_mobilenet_op_profile.txt"))
    again = json.loads(json.dumps(parsed.to_dict()))
    assert again["inference_avg_us"] == parsed.inference_avg_us
    assert len(again["run_order"]) == len(parsed.run_order)


def test_host_description_names_this_cpu():
    host = bench.host_description()
    assert host["cpu"] and host["machine"]
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "model name" in cpuinfo.read_text():
        assert host["cpu"] in cpuinfo.read_text()


# --- host latency ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flatbuffers(tmp_path_factory):
    """A binary LCE flatbuffer and a full-integer int8 TFLite one, each from a tiny real model."""
    import larq as lq
    import larq_compute_engine as lce
    import numpy as np
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("flatbuffers")
    inputs = tf.keras.Input((32, 1, 32))
    x = lq.layers.QuantConv2D(
        64,
        (1, 1),
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    binary = tf.keras.Model(inputs, tf.keras.layers.Dense(12)(x))
    (directory / "binary.tflite").write_bytes(lce.convert_keras_model(binary))

    float_model = tf.keras.Sequential([tf.keras.Input((32, 32)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(12)])
    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.normal(size=(1, 32, 32)).astype("float32")] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (directory / "int8.tflite").write_bytes(converter.convert())
    return directory


@pytest.mark.parametrize("name", ["binary.tflite", "int8.tflite"])
def test_time_flatbuffer_times_every_run(flatbuffers, name):
    times = bench.time_flatbuffer((flatbuffers / name).read_bytes(), runs=7, warmup_runs=2)
    assert times.shape == (7,) and (times > 0).all()


def test_bench_host_report_is_labelled_with_the_host(flatbuffers):
    paths = bench.flatbuffer_paths([flatbuffers])
    assert [p.name for p in paths] == ["binary.tflite", "int8.tflite"]
    report = bench.bench_host(paths, threads=2, runs=9, warmup_runs=1)
    assert report["host"] == bench.host_description()
    assert "never a Raspberry Pi figure" in report["note"]
    for result, path in zip(report["results"], paths):
        assert result["bytes"] == path.stat().st_size and result["threads"] == 2 and result["runs"] == 9
        assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]


def test_flatbuffer_paths_follow_the_manifest_order(flatbuffers, tmp_path):
    from stream_models import manifest_entry, write_manifest

    from bifsmn_tf.records import KIND_INT8

    for name in ("binary.tflite", "int8.tflite"):
        (tmp_path / name).write_bytes((flatbuffers / name).read_bytes())
    write_manifest(
        tmp_path,
        [manifest_entry(tmp_path, "int8.tflite", KIND_INT8), manifest_entry(tmp_path, "binary.tflite", width=8)],
    )
    assert [p.name for p in bench.flatbuffer_paths([tmp_path])] == ["int8.tflite", "binary.tflite"]


def test_cli_bench_prints_and_writes_json(flatbuffers, tmp_path, capsys):
    from bifsmn_tf.cli import main

    out = tmp_path / "host.json"
    assert (
        main(
            [
                "bench",
                str(flatbuffers / "binary.tflite"),
                "--runs",
                "5",
                "--warmup-runs",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["host"]["cpu"] in printed and "never a Raspberry Pi figure" in printed
    assert f"{report['results'][0]['median_ms']:.3f}" in printed


@pytest.mark.parametrize(
    "content, message",
    [(None, "no flatbuffer or directory"), (b"not a flatbuffer", "not a TFLite flatbuffer")],
)
def test_cli_bench_names_the_bad_path(tmp_path, capsys, content, message):
    from bifsmn_tf.cli import main

    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    assert main(["bench", str(path), "--runs", "2"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


@pytest.mark.parametrize("name", ["binary.tflite", "int8.tflite"])
def test_read_flatbuffer_refuses_every_cut(flatbuffers, tmp_path, name):
    # LCE's interpreter segfaults on a flatbuffer cut short: none may reach it.
    whole = (flatbuffers / name).read_bytes()
    assert bench.read_flatbuffer(flatbuffers / name) == whole
    cut = tmp_path / name
    step = max(1, len(whole) // 200)
    lengths = sorted({*range(0, len(whole), step), *range(len(whole) - 64, len(whole))})
    for length in lengths:
        cut.write_bytes(whole[:length])
        with pytest.raises(bench.FlatbufferError, match=f"{name}: .*bifsmn-tf convert"):
            bench.read_flatbuffer(cut)


# A child process that keeps one core busy for half a second of its own CPU time.
_BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5:\n    pass\n"


def test_stopwatch_counts_cpu_of_this_process_and_of_children_that_ended():
    watch = bench.Stopwatch()
    assert watch.cores_busy == 0.0
    with watch:
        time.sleep(0.3)
    assert watch.wall >= 0.3
    assert watch.cpu < 0.1  # sleeping keeps no core busy
    with bench.Stopwatch() as child:
        subprocess.run([sys.executable, "-c", _BURN], check=True)
    # The child's CPU time is counted whatever else the machine runs; its wall time is not fixed.
    assert child.cpu >= 0.5
    assert child.cores_busy == pytest.approx(child.cpu / child.wall)
    start = bench.Stopwatch().start()
    subprocess.run([sys.executable, "-c", _BURN], check=True)
    # start/stop as the benchmarks' Keras callbacks use them; stop() can be read again later.
    assert start.stop().cpu >= 0.5
    assert start.wall >= start.cpu / 2
