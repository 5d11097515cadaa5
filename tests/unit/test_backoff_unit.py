"""The kubelet's image-pull back-off read from pod status and events, without a cluster."""

from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod

from chaosregistry.kubernetes.backoff import (
    backoff_delay,
    backoff_summary,
    pod_backoff,
    recovery_timeline,
)

IMAGE = "registry.chaosregistry.test/demo/app:1"


def _pod(name: str, state: dict[str, Any], node: str = "chaosregistry-node-2") -> Pod:
    return Pod.from_dict(
        {
            "metadata": {"name": name, "namespace": "chaos-demo"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": IMAGE}]},
            "status": {
                "phase": "Running" if "running" in state else "Pending",
                "containerStatuses": [
                    {
                        "name": "app",
                        "image": IMAGE,
                        "imageID": "",
                        "ready": "running" in state,
                        "restartCount": 0,
                        "state": state,
                    }
                ],
            },
        }
    )


def _event(pod: str, reason: str, message: str, count: int, time: float) -> dict[str, Any]:
    return {"pod": pod, "reason": reason, "message": message, "count": count, "time": time}


def _failed_three_times(pod: str) -> list[dict[str, Any]]:
    return [
        _event(pod, "Pulling", f'Pulling image "{IMAGE}"', 3, 1030.0),
        _event(pod, "Failed", f'Failed to pull image "{IMAGE}": connection refused', 3, 1031.0),
        _event(pod, "Failed", "Error: ErrImagePull", 3, 1031.0),
        _event(pod, "BackOff", f'Back-off pulling image "{IMAGE}"', 5, 1045.0),
        _event(pod, "Failed", "Error: ImagePullBackOff", 5, 1045.0),
    ]


def test_backoff_delay_doubles_from_10_s_and_stops_at_300_s() -> None:
    assert backoff_delay(0) is None
    assert [backoff_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [
        10.0,
        20.0,
        40.0,
        80.0,
        160.0,
        300.0,
        300.0,
    ]


def test_a_pod_in_pull_back_off_counts_its_attempts_and_derives_its_delay() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling "{IMAGE}"'}}
    events = _failed_three_times("cold-start-7d-abcde") + _failed_three_times("other-7d-fghij")
    state = pod_backoff(_pod("cold-start-7d-abcde", waiting), events)
    assert state["in_back_off"] is True
    assert state["waiting_reason"] == "ImagePullBackOff"
    # Only this pod's events count: the other pod's are not added.
    assert (state["pull_attempts"], state["failed_pulls"], state["back_offs"]) == (3, 3, 5)
    assert state["delay_seconds"] == 40.0
    assert state["next_attempt_after"] == 1071.0
    assert state["node"] == "chaosregistry-node-2"
    assert state["running"] is False and state["running_at"] is None


def test_a_running_pod_is_not_in_back_off_whatever_its_past_failures() -> None:
    running = {"running": {"startedAt": "1970-01-01T00:17:55Z"}}
    events = [
        *_failed_three_times("p"),
        _event("p", "Pulled", f'Successfully pulled image "{IMAGE}" in 1.5s', 1, 1074.0),
    ]
    state = pod_backoff(_pod("p", running), events)
    assert state["in_back_off"] is False and state["delay_seconds"] is None
    assert state["running"] is True and state["running_at"] == 1075.0
    assert state["failed_pulls"] == 3 and state["pulled"] == 1


def test_summary_counts_pods_by_waiting_reason_and_keeps_the_longest_delay() -> None:
    events = [
        *_failed_three_times("a"),
        _event("b", "Failed", f'Failed to pull image "{IMAGE}": refused', 1, 1001.0),
    ]
    pods = [
        pod_backoff(_pod("a", {"waiting": {"reason": "ImagePullBackOff"}}), events),
        pod_backoff(_pod("b", {"waiting": {"reason": "ErrImagePull"}}), events),
        pod_backoff(_pod("c", {"waiting": {"reason": "ContainerCreating"}}), events),
    ]
    summary = backoff_summary(pods)
    assert summary["in_back_off"] == 2
    assert summary["waiting"] == {"ImagePullBackOff": 1, "ErrImagePull": 1, "ContainerCreating": 1}
    assert summary["max_delay_seconds"] == 40.0
    assert summary["failed_pulls"] == 4


def test_recovery_splits_each_pods_wait_into_back_off_and_pull() -> None:
    # Recorded on the two-node test cluster (epoch seconds shifted): three failed pulls each
    # during a 60 s outage, the heal at 1264.49.
    healed_at = 1264.49
    failures = [
        _event("a", "Failed", f'Failed to pull image "{IMAGE}": refused', 3, 1243.0),
        _event("b", "Failed", f'Failed to pull image "{IMAGE}": refused', 3, 1244.0),
    ]
    # a: the kubelet took it up again when b's pull had left the image on the node.
    # b: pulled itself, its fourth attempt.
    events = [
        *failures,
        _event("a", "Pulling", f'Pulling image "{IMAGE}"', 3, 1243.0),
        _event("a", "Pulled", f'Container image "{IMAGE}" already present on machine', 1, 1295.0),
        _event("b", "Pulling", f'Pulling image "{IMAGE}"', 4, 1285.0),
        _event("b", "Pulled", f'Successfully pulled image "{IMAGE}" in 166ms', 1, 1286.0),
    ]
    never_failed = [_event("c", "Pulling", f'Pulling image "{IMAGE}"', 1, 1265.0)]
    pods = [
        pod_backoff(_pod("a", {"running": {"startedAt": "1970-01-01T00:21:36Z"}}), events),
        pod_backoff(_pod("b", {"running": {"startedAt": "1970-01-01T00:21:26Z"}}), events),
        pod_backoff(_pod("c", {"running": {"startedAt": "1970-01-01T00:21:07Z"}}), never_failed),
    ]
    a, b, c = recovery_timeline(pods, healed_at)["pods"]
    assert a["resumed_at"] == 1295.0 and b["resumed_at"] == 1285.0
    assert a["back_off_seconds"] == pytest.approx(30.51)
    assert b["back_off_seconds"] == pytest.approx(20.51)
    # The back-off alone: 40 s after the third failure, the rest of the wait is re-sync.
    assert a["back_off_left_seconds"] == pytest.approx(18.51)
    assert b["back_off_left_seconds"] == pytest.approx(19.51)
    assert a["pull_to_running_seconds"] == b["pull_to_running_seconds"] == 1.0
    assert a["seconds"] == pytest.approx(31.51)
    # c never failed a pull: none of its wait was back-off.
    assert c["back_off_seconds"] == c["back_off_left_seconds"] == 0.0
    assert c["pull_to_running_seconds"] == 2.0
