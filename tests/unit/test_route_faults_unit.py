"""The nginx route faults (mirror upstream, quota, redirect) without a sandbox: what their 429
and 503 say, and the refusals made before anything is recorded (the sandbox tier applies them
for real)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.faults import assert_refused_before_recording

from chaosregistry.actions import quota, redirect, upstream
from chaosregistry.backends.local_quota import per_minute, quota_headers
from chaosregistry.backends.local_upstream import upstream_headers
from chaosregistry.errors import ConfigError


def test_a_429_carries_docker_hubs_quota_headers_and_a_503_only_retry_after() -> None:
    assert upstream_headers(429, 60) == {
        "retry-after": "60",
        "ratelimit-limit": "100;w=21600",
        "ratelimit-remaining": "0;w=21600",
    }
    assert upstream_headers(503, 5) == {"retry-after": "5"}


@pytest.mark.parametrize(
    ("fault", "configuration", "fragment"),
    [
        # The kubernetes backend has no nginx of ours in front of a cluster's registry or
        # mirror upstream: only the sandbox's, when sandbox_dir names it.
        (
            upstream.throttle_mirror_upstream,
            {"backend": "kubernetes"},
            "kubernetes backend cannot make a cluster's mirror upstream answer errors",
        ),
        (
            quota.impose_pull_quota,
            {"backend": "kubernetes"},
            "kubernetes backend cannot put a quota on a cluster's registry",
        ),
        (
            redirect.redirect_registry,
            {"backend": "kubernetes"},
            "kubernetes backend cannot make a cluster's registry redirect",
        ),
        # The local backend needs the sandbox whose nginx it rewrites.
        (upstream.throttle_mirror_upstream, {}, "the local backend needs 'sandbox_dir'"),
        (quota.impose_pull_quota, {}, "the local backend needs 'sandbox_dir'"),
        (redirect.redirect_registry, {}, "the local backend needs 'sandbox_dir'"),
    ],
)
def test_a_fault_it_cannot_make_is_refused_in_one_line_before_recording(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: Callable[..., Any],
    configuration: dict[str, str],
    fragment: str,
) -> None:
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    # Away from the checkout, whose ./runs/sandbox (the default sandbox dir) may hold a sandbox.
    monkeypatch.chdir(tmp_path)
    ledger_dir = tmp_path / "ledger"
    assert_refused_before_recording(
        lambda: fault(duration=10, configuration={**configuration, "ledger_dir": str(ledger_dir)}),
        fragment,
        ledger_dir,
    )


def test_a_quota_is_a_whole_number_of_requests_per_minute_and_says_so() -> None:
    assert per_minute(10, 60) == 10
    assert per_minute(100, 600) == 10
    assert per_minute(5, 30) == 10
    with pytest.raises(ConfigError, match="not a whole number per minute"):
        per_minute(100, 21600)  # Docker Hub's 100 per 6 h is finer than nginx's 1r/m
    with pytest.raises(ConfigError, match="requests must be"):
        per_minute(0, 60)
    with pytest.raises(ConfigError, match="window must be"):
        per_minute(10, True)  # type: ignore[arg-type]


def test_the_quotas_429_tells_when_one_more_request_passes() -> None:
    assert quota_headers(5, 60) == {
        "ratelimit-limit": "5;w=60",
        "ratelimit-remaining": "0;w=60",
        "retry-after": "12",
    }
    assert quota_headers(7, 60)["retry-after"] == "9"  # rounded up, never early
