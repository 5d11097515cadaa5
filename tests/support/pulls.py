"""Whether a network fault on a hop is in place, told by what it cannot fail to do to pulls."""

from typing import Any

from chaosregistry.probes.pull import pull_latency


def fastest_pull(configuration: dict[str, Any], image: str, count: int = 3) -> float:
    """The fastest of ``count`` pulls of ``image`` (seconds); every one must succeed.

    Why the fastest: a latency fault slows *every* pull by at least its delayed responses, so
    the fastest pull proves it in place (no faster than that) or gone (faster), whatever a busy
    machine adds to the others. A p50 against a baseline measured a moment earlier does not: on
    the loaded suite a baseline p50 of 0.29 s made a p50 of 0.71 s under two 300 ms responses
    look too fast.
    """
    result = pull_latency(image, count=count, configuration=configuration)
    assert result["success_ratio"] == 1.0, result["first_error"]
    return float(result["min"])


def delayed_responses(latency_ms: int, responses: int = 2) -> float:
    """Seconds at least that a pull pays under ``latency_ms`` on its hop: a manifest round trip
    then the blobs, each response delayed."""
    return responses * latency_ms / 1000
