"""How pytest-xdist shares the tests among its workers (tests/conftest.py installs it for every
parallel run, whatever ``--dist`` says).

Work goes out in units, largest first, a new one to a worker that is nearly done:
- the whole cluster tier is one unit, so it runs on one worker, test after test: a test cluster
  holds names and addresses only one cluster on the machine can have (its node interface,
  bridge, pod subnet and cgroup root; chaosregistry.cluster.layout);
- a sandbox module is one unit, so its module-scoped sandboxes (one per implementation) start
  once, on the worker that runs it;
- every unit test is a unit of its own.

(xdist's own ``--dist loadgroup`` would group by ``xdist_group`` markers, but with pytest 9 it
never does: it renames ``item._nodeid``, which pytest 9 no longer reads.)
"""

from xdist.scheduler import LoadScopeScheduling


class TierScheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path.startswith("tests/cluster/"):
            return "tests/cluster"
        if path.startswith("tests/sandbox/"):
            return path
        return nodeid
