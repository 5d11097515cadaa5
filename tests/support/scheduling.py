"""How pytest-xdist shares the tests among its workers (tests/conftest.py installs it for every
parallel run, whatever ``--dist`` says).

Work goes out in units, a new one to a worker that is nearly done:
- the cluster tier is two units, which go out first and run side by side on two workers: the
  modules on the session's shared cluster (``uses_shared_cluster`` in support/cluster.py), and
  the modules that bring up clusters of their own. Each unit is the longest chain of the run
  (cluster bring-ups and waits, test after test), and the two take about as long (measured:
  bench/README.md). Two test clusters fit on a machine, one per instance
  (chaosregistry.cluster.layout.Instance), which a test cluster holds while it lives
  (support/cluster.py ``cluster_instance``). Whole modules go to a unit, so a module's own
  cluster and the shared cluster's order (after the others, up once) hold on each worker;
- a sandbox module is one unit, so its module-scoped sandboxes (one per implementation) start
  once, on the worker that runs it;
- every unit test is a unit of its own.
The others go largest first (xdist's order, by number of tests).

The controller collects nothing, so it tells the cluster units apart by reading each module's
source (``module_uses_shared_cluster``); collection checks that every test on the shared
cluster lives in a module it reads that way (support/cluster.py ``check_cluster_units``).

(xdist's own ``--dist loadgroup`` would group by ``xdist_group`` markers, but with pytest 9 it
never does: it renames ``item._nodeid``, which pytest 9 no longer reads.)
"""

import ast
import functools
from collections import OrderedDict
from pathlib import Path
from typing import Any

from xdist.scheduler import LoadScopeScheduling

CLUSTER_TIER = "tests/cluster/"
SHARED_CLUSTER_UNIT = "tests/cluster[the shared cluster]"
OWN_CLUSTERS_UNIT = "tests/cluster[clusters of their own]"
# The fixtures through which a module's tests reach the shared cluster.
SHARED_CLUSTER_FIXTURES = frozenset({"kube_cluster", "shared_cluster"})


def module_uses_shared_cluster(source: str) -> bool:
    """Whether a cluster module runs on the shared cluster, read from its source: one of its
    functions takes ``kube_cluster`` (or ``shared_cluster``), and it defines neither itself (a
    module that overrides ``kube_cluster`` brings up a cluster of its own)."""
    functions = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    requested = {arg.arg for f in functions for arg in (*f.args.args, *f.args.kwonlyargs)}
    defined = {f.name for f in functions}
    return bool(requested & SHARED_CLUSTER_FIXTURES) and not defined & SHARED_CLUSTER_FIXTURES


@functools.cache
def cluster_unit(module: Path) -> str:
    """The cluster unit of the module at ``module``."""
    shared = module_uses_shared_cluster(module.read_text())
    return SHARED_CLUSTER_UNIT if shared else OWN_CLUSTERS_UNIT


def cluster_units_first(workqueue: "OrderedDict[str, dict[str, bool]]") -> None:
    """Move a cluster unit, if one is left, to the front of ``workqueue`` (in place)."""
    for scope in workqueue:
        if scope.startswith(CLUSTER_TIER.rstrip("/")):
            workqueue.move_to_end(scope, last=False)
            return


class TierScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path.startswith(CLUSTER_TIER):
            return cluster_unit(self.config.rootpath / path)
        if path.startswith("tests/sandbox/"):
            return path
        return nodeid

    def _assign_work_unit(self, node: Any) -> None:
        # Each cluster unit starts as soon as a worker is free, whatever its number of tests:
        # started after a sandbox module, it would end the run later.
        cluster_units_first(self.workqueue)
        super()._assign_work_unit(node)
