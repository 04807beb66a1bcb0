"""A simulated autoscaling Ray cluster for tests: `cluster_sim.yaml` (Ray's fake multi-node
provider: the autoscaler starts each "node" as a raylet of its own on this machine, with the
resources its node type declares) behind a head of its own.

Everything is the test's own: the head is `ray start --head --block` in a subprocess of its own
session, on free ports (GCS, dashboard, agent, client) and a temp dir of its own, so it never
meets the suite's session-wide local Ray or anyone else's. Teardown kills only the processes
that carry this cluster's temp dir or GCS port on their command line, by pid. Never `ray stop`
and never `AutoscalingCluster.start()`: both stop every Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "cluster_sim.yaml"
HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # the provider's
HEAD_TYPE = "ray.head.default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimCluster:
    """`with SimCluster() as cluster:` a head is up at `cluster.address`; workers come and go
    as the autoscaler decides. `kill_node(node_id)` takes one away as a preempted spot VM."""

    def __init__(self, config: Path = CONFIG, env: dict | None = None, **overrides):
        self.temp_dir = tempfile.mkdtemp(prefix="raysim-", dir="/tmp")  # short: socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config_path = Path(self.temp_dir, "cluster_sim.yaml")
        config_data = yaml.safe_load(Path(config).read_text())
        config_data["provider"]["gcs_address"] = self.address
        config_data.update(overrides)
        self.config_path.write_text(yaml.safe_dump(config_data))
        self.dashboard = f"http://127.0.0.1:{free_port()}"
        self.extra_env = dict(env or {})
        self.head: subprocess.Popen | None = None
        self.log = Path(self.temp_dir, "head.log")

    def env(self) -> dict:
        """The head's environment: the fake provider's switch and the head's fixed node id."""
        # The autoscaler polls every second, not every 5: nodes come and go sooner. A silent
        # node keeps Ray's 30 s before it is replaced: on a loaded machine a live node's
        # heartbeat can lag 10 s, and replacing it would kill a healthy trial. (Autoscaler
        # v2 cannot run the fake provider from the 2.60 wheel: it reads the provider's
        # example.yaml for defaults, which the wheel does not ship.)
        return {**os.environ, "RAY_FAKE_CLUSTER": "1", "RAY_AUTH_MODE": "disabled",
                "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                "RAY_OVERRIDE_NODE_ID_FOR_TESTING": HEAD_NODE_ID,
                "RAY_CLOUD_INSTANCE_ID": HEAD_NODE_ID, "RAY_NODE_TYPE_NAME": HEAD_TYPE,
                "PYTHONPATH": str(REPO), **self.extra_env}

    def start(self, timeout_s: float = 120) -> Self:
        head = yaml.safe_load(self.config_path.read_text())["available_node_types"][HEAD_TYPE]
        resources = dict(head["resources"])
        cpus = resources.pop("CPU", 1)
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [str(ray_bin), "start", "--head", "--block", f"--port={self.port}",
               f"--temp-dir={self.temp_dir}", f"--autoscaling-config={self.config_path}",
               f"--num-cpus={cpus}", "--num-gpus=0", f"--resources={_json(resources)}",
               "--include-dashboard=true",
               f"--dashboard-port={self.dashboard.rsplit(':', 1)[1]}",
               f"--dashboard-agent-listen-port={free_port()}",
               f"--ray-client-server-port={free_port()}", "--disable-usage-stats"]
        with open(self.log, "w") as log:
            self.head = subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_for_head(timeout_s)
        return self

    def _wait_for_head(self, timeout_s: float) -> None:
        """Until the dashboard answers and lists the head as alive."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.head.poll() is not None:
                raise RuntimeError(f"simulated head exited:\n{self.log.read_text()[-3000:]}")
            if self._head_listed():
                return
            time.sleep(1)
        raise TimeoutError(f"simulated head not up in {timeout_s} s:\n"
                           f"{self.log.read_text()[-3000:]}")

    def _head_listed(self) -> bool:
        try:
            return any(n["is_head_node"] and n["state"] == "ALIVE" for n in self.nodes())
        except Exception:  # noqa: BLE001 (the dashboard is not up yet: it fails in many ways)
            return False

    def pids(self) -> list[int]:
        """Processes of this cluster: those whose command line names its temp dir or GCS port
        (GCS, raylets, monitor, dashboard), the head command, and all their descendants
        (workers and agents, whose command lines are just "ray::...")."""
        marks = (self.temp_dir, f":{self.port}")
        roots = {pid for pid, cmdline in _processes().items()
                 if any(mark in cmdline for mark in marks)}
        if self.head is not None and self.head.poll() is None:
            roots.add(self.head.pid)
        return sorted(_with_descendants(roots))

    def node_pids(self, node_id: str) -> list[int]:
        """One simulated worker node: its raylet (started with the node's id in its
        environment) and the raylet's descendants (its workers and agents)."""
        needle = f"RAY_OVERRIDE_NODE_ID_FOR_TESTING={node_id}".encode()
        raylets = {pid for pid, cmdline in _processes().items()
                   if self.temp_dir in cmdline and "/raylet" in cmdline.split(" ")[0]
                   and needle in _environ(pid)}
        return sorted(_with_descendants(raylets))

    def nodes(self) -> list[dict]:
        """Every node the cluster's GCS knows, dead ones included: node_id, state, is_head_node,
        resources_total (Ray's state API over the dashboard: no ray.init in this process)."""
        from ray.util.state import list_nodes

        return [n.__dict__ if hasattr(n, "__dict__") else dict(n)
                for n in list_nodes(address=self.dashboard, detail=True, limit=1000)]

    def kill_node(self, node_id: str) -> list[int]:
        """SIGKILL every process of one node, as when a spot VM vanishes."""
        pids = self.node_pids(node_id)
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        return pids

    def autoscaler_log(self, chars: int = 4000) -> str:
        """The end of the autoscaler's log (monitor.out): what it launched, lost and why."""
        logs = sorted(Path(self.temp_dir).glob("session_2*/logs/monitor.*"))
        return "".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
                       for log in logs if log.suffix in (".out", ".log", ".err"))

    def stop(self) -> None:
        if self.head is not None and self.head.poll() is None:
            os.killpg(self.head.pid, signal.SIGTERM)  # its own session: only what it started
            try:
                self.head.wait(15)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.time() + 15
        while time.time() < deadline and self.pids():
            time.sleep(0.5)
        for pid in self.pids():
            _kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _processes() -> dict[int, str]:
    """pid -> command line of every process we can read (not this one)."""
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                out[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return out


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _with_descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(proc.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _json(obj) -> str:
    import json

    return json.dumps(obj)
