"""cluster.yaml is a valid Ray cluster config (Ray's own schema), says what each key is for,
and describes the cluster the sweep needs: a CPU head with train_driver, A100 x 8 workers
that scale from zero, the project installed with its gpu extra, bubblewrap on every node."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import ray
import yaml
from paths import REPO

from sweep.study.simulate import SIM_GPU, SIM_GPU_SCALE

CLUSTER = REPO / "cluster.yaml"


def _config() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_validates_against_rays_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(_config(), schema)
    broken = {**_config(), "max_workers": "four"}
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema check accepts anything")


def test_every_key_has_a_comment():
    lines = CLUSTER.read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*(- )?[\"'~\w.-]+\s*:(\s|$)", line):
            continue
        before = next((p for p in reversed(lines[:i]) if p.strip()), "")
        if "#" not in line and not before.strip().startswith("#"):
            missing.append(f"cluster.yaml:{i + 1}: {line.strip()}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


def test_describes_the_sweeps_cluster():
    cfg = _config()
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"].get("train_driver", 0) >= 1
    assert "GPU" not in head["resources"] and not head["node_config"]["InstanceType"].startswith("p")
    gpu = [t for n, t in cfg["available_node_types"].items() if n != cfg["head_node_type"]]
    assert len(gpu) == 1 and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 2
    assert gpu[0]["node_config"]["InstanceType"] == "p4de.24xlarge"  # 8 x A100 80GB
    assert cfg["provider"]["type"] == "aws"
    assert any("[gpu]" in c for c in cfg["setup_commands"])
    # every node (head and workers) gets the HumanEval sandbox, and checks that it works
    setup = cfg["setup_commands"]
    assert any("apt-get install" in c and "bubblewrap" in c for c in setup)
    assert any(c.startswith("bwrap ") for c in setup)
    assert "s3://" in CLUSTER.read_text()



def test_the_simulated_cluster_mirrors_the_real_one():
    """cluster_sim.yaml (Ray's fake multi-node provider) has cluster.yaml's worker types, their
    limits and scale-from-zero, its cluster max_workers and the head's train_driver, with each
    worker's GPUs as sim_gpu at a quarter of the count."""
    real = _config()
    sim = yaml.safe_load((CLUSTER.parent / "cluster_sim.yaml").read_text())
    assert sim["provider"]["type"] == "fake_multinode"
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(sim, schema)
    assert sim["max_workers"] == real["max_workers"]
    real_workers = {n: t for n, t in real["available_node_types"].items()
                    if n != real["head_node_type"]}
    sim_workers = {n: t for n, t in sim["available_node_types"].items()
                   if n != sim["head_node_type"]}
    assert set(sim_workers) == set(real_workers)
    for name, real_type in real_workers.items():
        sim_type = sim_workers[name]
        assert sim_type["min_workers"] == real_type["min_workers"] == 0
        assert sim_type["max_workers"] == real_type["max_workers"]
        assert sim_type["resources"][SIM_GPU] * SIM_GPU_SCALE == real_type["resources"]["GPU"]
    real_head = real["available_node_types"][real["head_node_type"]]["resources"]
    sim_head = sim["available_node_types"][sim["head_node_type"]]["resources"]
    assert sim_head["train_driver"] == real_head["train_driver"] and SIM_GPU not in sim_head
