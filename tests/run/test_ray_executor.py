"""The Ray executor on a local 2-node cluster (one node advertising a custom resource): the same
metrics and artifact hashes as the local executor, and resource-bound measurements on that node.

The int8 variant pins `nodes: all`: the default `nodes: auto` keeps a unit float from kernel timings, which may
differ between two runs on a busy machine, so its bytes are not a function of the inputs alone."""
from __future__ import annotations

import json
from typing import Any

import pytest

from compressor import run_pipeline
from compressor.errors import ConfigError
from compressor.run.pipeline import parse_pipeline
from tests.conftest import pipeline_dict

ray = pytest.importorskip("ray")

RESOURCE = "bench-board"
VARIANTS = {"fp32": ["convert.onnx"],
            "int8": ["convert.onnx", {"quantize.onnx.static": {"per_channel": True, "nodes": "all"}}]}
BENCH = {"batch_sizes": [2], "threads": 1, "warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 5, "min_seconds": 0.0}


@pytest.fixture(scope="module")
def cluster() -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    node = c.add_node(num_cpus=1, resources={RESOURCE: 1})
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield c, node.node_id
    finally:
        ray.shutdown()
        c.shutdown()


def _summary(results: dict[str, Any]) -> list[tuple]:
    return [(v["name"], v["metric"], v["artifact"]["sha256"], [(e["pass"], e["metric"], e["artifact"]) for e in v["ledger"]])
            for v in results["variants"]]


@pytest.mark.slow
def test_ray_gives_the_local_results_and_measures_on_the_resource_node(cluster, tmp_path, tiny_weights) -> None:
    _, board = cluster
    local = run_pipeline(parse_pipeline(pipeline_dict(tiny_weights, VARIANTS, benchmark=BENCH), tmp_path),
                         tmp_path / "local", cache_dir=tmp_path / "cache-local")
    raw = pipeline_dict(tiny_weights, VARIANTS, benchmark=BENCH, executor={"kind": "ray"},
                        targets=["onnxruntime:cpu", f"onnxruntime:cpu@node:{RESOURCE}"])
    remote = run_pipeline(parse_pipeline(raw, tmp_path), tmp_path / "ray", cache_dir=tmp_path / "cache-ray")
    assert local["executor"] == "local" and remote["executor"] == "ray"
    assert _summary(remote) == _summary(local)  # every pass recomputed in its own cache: same numbers, same bytes
    for v in remote["variants"]:
        bound = [b for b in v["benchmarks"] if b.get("resource") == RESOURCE]
        free = [b for b in v["benchmarks"] if "resource" not in b]
        assert len(bound) == len(free) == 1 and "error" not in bound[0], v["benchmarks"]
        assert bound[0]["measured_on"]["node_id"] == board
        assert {"cpu", "packages"} <= set(bound[0]["measured_on"]["environment"])
        assert bound[0]["metric"] == v["metric"]
    assert json.loads((tmp_path / "ray" / "results.json").read_text())["executor"] == "ray"


def test_a_resource_target_needs_the_ray_executor(tmp_path, tiny_weights) -> None:
    raw = pipeline_dict(tiny_weights, VARIANTS, targets=[f"onnxruntime:cpu@node:{RESOURCE}"])
    with pytest.raises(ConfigError, match="only the Ray executor can place"):
        parse_pipeline(raw, tmp_path)
    with pytest.raises(ConfigError, match="node:RESOURCE"):
        parse_pipeline(pipeline_dict(tiny_weights, VARIANTS, targets=["onnxruntime:cpu@board"]), tmp_path)
