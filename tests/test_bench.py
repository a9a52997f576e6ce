"""bifsmn_tf.bench: the lce_benchmark_model output parser on real samples, and host latency."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bifsmn_tf import bench
from bifsmn_tf.bench import BenchmarkOutputError, parse_benchmark_output, parse_op_profile

SAMPLES = Path(__file__).parent / "data" / "lce_benchmark_model"


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# Each real sample with the numbers its timing line prints (SOURCES.md says where each comes from).
TIMED_SAMPLES = {
    "xnnpack_issue999_raspberry_pi_head.txt": dict(init_us=18777, first_inference_us=64791, warmup_avg_us=57758.2, inference_avg_us=55043.2),
    "kws_streaming_issue802_android_head.txt": dict(init_us=17851, first_inference_us=2104, warmup_avg_us=1041.15, inference_avg_us=1039.66),
    "tf_issue42507_android_head.txt": dict(init_us=855, first_inference_us=49060, warmup_avg_us=34825.1, inference_avg_us=33209.4),
    "tf_issue62775_x86_info_prefix_head.txt": dict(init_us=630, first_inference_us=3678, warmup_avg_us=3751.66, inference_avg_us=3790.92),
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
        ("xnnpack_issue999_raspberry_pi_head.txt", 8.97656, 18.7227),  # "Memory footprint delta ..."
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
        "Warmup (avg): 57758.2, Inference (avg): 55043.2", "Warmup (avg): 1.04176e+06, Inference (avg): 9.5e+05"
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
