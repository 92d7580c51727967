"""A two-node Ray cluster on this machine (ray.cluster_utils.Cluster): a node that leaves costs time, not results.

Per-program work on a node that leaves is retried on the nodes left; an environment actor on a
node that leaves ends its episode with `error` set and is replaced on another node.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.executor import make_executor
from compilerdream.compiler.search import Budget, make_policy, run_search
from compilerdream.compiler.search_executor import search_one

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (scripts/setup.sh installs it)")
from ray.cluster_utils import Cluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("qsort", "crc32", "matmul", "statemachine", "csmith_94", "csmith_258")


@pytest.fixture
def cluster():
    """A head node without CPUs (so work goes to worker nodes) and one worker node of 2 CPUs."""
    if ray.is_initialized():
        ray.shutdown()
    fast_failure_detection = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": fast_failure_detection},
    )
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level="warning")
    yield c
    ray.shutdown()
    c.shutdown()


def _comparable(rows) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != "walltime"} for r in rows), key=lambda r: (r["benchmark"], r["method"]))


def test_work_on_a_node_that_leaves_is_redone_elsewhere(cluster, program_bitcode):
    programs = [(None, Benchmark.from_file(program_bitcode[n])) for n in NAMES]
    budget = Budget(compilations=100)
    specs = [("random", {})]
    args = (specs, budget, {}, "NoLimit", 4, "o0")
    first_node = cluster.list_all_nodes()[1]
    results, removed = [], False
    with make_executor("ray") as ex:
        assert ex.jobs == 2
        for _item, rows, error in ex.map_unordered(search_one, programs, *args):
            assert error is None, error
            results += rows
            if not removed:  # a node leaves with work in flight; another one joins
                cluster.remove_node(first_node, allow_graceful=False)
                cluster.add_node(num_cpus=2)
                removed = True
    assert removed and len(results) == len(NAMES)
    local = run_search([make_policy("random")], [b for _, b in programs], budget, seed=4, progress=False)
    assert _comparable(results) == _comparable(r.to_json() for r in local)


@pytest.mark.slow
def test_an_environment_actor_on_a_node_that_leaves_is_replaced(cluster):
    from compilerdream.ray_env import RayTask

    programs = [Benchmark.from_file(ROOT / "examples" / "programs" / f"{n}.c") for n in ("qsort", "crc32")]
    task = RayTask("examples", "train", {"compilergym.max_step": 10}, seed=0, benchmarks=programs)
    try:
        task.reset()
        assert not task.step(1).get("error")
        cluster.add_node(num_cpus=1)  # where the replacement can go
        host = next(n for n in cluster.list_all_nodes() if n.node_id == task.actor_node)
        cluster.remove_node(host, allow_graceful=False)
        # the actor's process notices that its node is gone within seconds; until then steps still work
        deadline, obs = time.monotonic() + 120, {}
        while time.monotonic() < deadline and not obs.get("error"):
            obs = task.step(2)
            if obs["is_last"] and not obs.get("error"):
                task.reset()
            time.sleep(0.2)
        assert obs["is_last"] and obs["error"].startswith("ActorDiedError"), obs.get("error")
        assert task.replacements == 1 and task.actor_node != host.node_id
        again = task.reset()
        assert again["is_first"] and not task.step(3).get("error")
    finally:
        task.close()
