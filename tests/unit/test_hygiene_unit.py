"""The hygiene probes at the HTTP boundary: what real registries cannot be made to do on cue
(a Link to another host, a loop, ignoring ``n`` or ``last``), and bad input refused in one line
before any request."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.experiment.settings import RegistryTarget
from chaosregistry.experiment.validate import check_activity
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.reference import tag_pattern
from chaosregistry.probes.hygiene import layer_reuse, tag_compliance

URL = "http://reg.test"
Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler) -> RegistryClient:
    return RegistryClient(URL, transport=httpx.MockTransport(handler))


def listing(key: str, names: list[str], link: str = "") -> httpx.Response:
    headers = {"link": link} if link else {}
    return httpx.Response(200, json={key: names}, headers=headers)


def paged_tags(
    tags: list[str], *, honour_n: bool = True, honour_last: bool = True, links: bool = True
) -> tuple[Handler, list[httpx.Request]]:
    """A tags/list of ``tags`` that does (or does not) honour n, last and send Links."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        names = sorted(tags)
        if honour_last and "last" in query:
            names = [t for t in names if t > query["last"]]
        if honour_n and "n" in query:
            n = int(query["n"])
            more = len(names) > n
            names = names[:n]
            if links and more:
                link = f'</v2/app/tags/list?n={n}&last={names[-1]}>; rel="next"'
                return listing("tags", names, link)
        return listing("tags", names)

    return handler, seen


TAGS = [f"app-prod-1.0.{i}" for i in range(7)]


def test_link_headers_are_followed_page_by_page() -> None:
    handler, seen = paged_tags(TAGS)
    with client_for(handler) as client:
        result = client.list_tags("app", page_size=3)
    assert (result.names, result.pages, result.paging) == (TAGS, 3, "link")
    assert [r.url.params.get("last") for r in seen] == [None, "app-prod-1.0.2", "app-prod-1.0.5"]


def test_a_registry_that_ignores_n_is_read_in_one_page() -> None:
    handler, seen = paged_tags(TAGS, honour_n=False)
    with client_for(handler) as client:
        result = client.list_tags("app", page_size=2)
    assert (result.names, result.pages, result.paging) == (TAGS, 1, "n-ignored")
    assert len(seen) == 1


def test_full_pages_without_links_are_continued_with_last() -> None:
    handler, _ = paged_tags(TAGS, links=False)
    with client_for(handler) as client:
        result = client.list_tags("app", page_size=2)
    # 2 + 2 + 2 + 1 tags.
    assert (result.names, result.pages, result.paging) == (TAGS, 4, "last")


def test_a_registry_that_ignores_last_is_read_unpaged() -> None:
    handler, seen = paged_tags(TAGS, honour_last=False, links=False)
    with client_for(handler) as client:
        result = client.list_tags("app", page_size=2)
    assert (result.names, result.paging) == (TAGS, "unpaged")
    assert "n" not in seen[-1].url.params  # the whole listing, in one request


def test_a_registry_that_starts_again_past_the_end_stops_there() -> None:
    # 4 tags, n=2: the page after the last full one repeats the first (go-containerregistry).
    def handler(request: httpx.Request) -> httpx.Response:
        if "n" not in request.url.params:
            return listing("tags", ["a", "b", "c", "d"])
        last = request.url.params.get("last")
        return listing("tags", ["c", "d"] if last == "b" else ["a", "b"])

    with client_for(handler) as client:
        result = client.list_tags("app", page_size=2)
    # The repeat could also mean "last ignored": one unpaged request shows it is the end.
    assert (result.names, result.pages, result.paging) == (["a", "b", "c", "d"], 4, "last")


def test_a_link_to_another_host_is_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return listing(
            "tags", ["a"], '<https://elsewhere.test/v2/app/tags/list?last=a>; rel="next"'
        )

    with client_for(handler) as client, pytest.raises(PullError) as caught:
        client.list_tags("app", page_size=1)
    assert caught.value.error_class is ErrorClass.PROTOCOL
    assert "another origin (https://elsewhere.test)" in str(caught.value)
    assert [r.url.host for r in seen] == ["reg.test"]


def test_an_absolute_link_on_our_origin_among_other_rels_is_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        last = request.url.params.get("last")
        if last is not None:
            return listing("repositories", {"a": ["b"], "b": []}[last])
        link = f'<{URL}/v2/_catalog?n=1&last=a>; rel="next", </v2/_catalog?n=1>; rel=first'
        return listing("repositories", ["a"], link)

    with client_for(handler) as client:
        result = client.list_repositories(page_size=1)
    assert (result.names, result.paging) == (["a", "b"], "link")


def test_a_link_that_loops_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return listing("tags", ["a"], '</v2/app/tags/list?n=1&last=a>; rel="next"')

    with client_for(handler) as client, pytest.raises(PullError) as caught:
        client.list_tags("app", page_size=1)
    assert caught.value.error_class is ErrorClass.PROTOCOL
    assert "pagination loops" in str(caught.value)


def test_the_catalog_asks_a_token_for_the_catalog_scope() -> None:
    scopes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            scopes.append(request.url.params["scope"])
            return httpx.Response(200, json={"token": "t"})
        if request.headers.get("authorization") != "Bearer t":
            challenge = 'Bearer realm="http://auth.test/token",service="reg"'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return listing("repositories", ["a"])

    with client_for(handler) as client:
        assert client.list_repositories().names == ["a"]
    assert scopes == ["registry:catalog:*"]


# -- the probes, through the configured target ------------------------------------------------
@pytest.fixture
def registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[Handler], dict[str, Any]]:
    """Route the probes' client to ``handler``; returns the configuration to pass them."""
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./runs/sandbox to find

    def use(handler: Handler) -> dict[str, Any]:
        def client(self: RegistryTarget, **_: Any) -> RegistryClient:
            return client_for(handler)

        monkeypatch.setattr(RegistryTarget, "client", client)
        return {"registry_url": URL}

    return use


def test_tag_compliance_reports_a_bad_link_as_data(
    registry: Callable[[Handler], dict[str, Any]],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/_catalog":
            return listing("repositories", ["good", "bad"])
        if request.url.path == "/v2/bad/tags/list":
            return listing("tags", ["x"], '<http://other.test/v2/bad/tags/list?last=x>; rel="next"')
        return listing("tags", ["good-prod-1.0.0", "latest", "nightly"])

    result = tag_compliance(configuration=registry(handler))
    assert result["ok"] is False
    assert result["errors"]["bad"]["class"] == "protocol"
    assert result["non_compliant"] == {"good": ["nightly"]}
    assert (result["tags"], result["compliant"], result["allowed_tags"]) == (3, 2, 1)


def test_a_pattern_that_is_not_a_regex_is_one_line_and_sends_nothing(
    registry: Callable[[Handler], dict[str, Any]],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return listing("repositories", [])

    configuration = registry(handler)
    with pytest.raises(ActivityFailed) as caught:
        tag_compliance(pattern="app-(prod", configuration=configuration)
    message = str(caught.value)
    assert message.startswith("tag_compliance: pattern 'app-(prod' is not a valid regular")
    assert "\n" not in message
    assert seen == []


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda c: tag_compliance(repositories=["Not/A/Name"], configuration=c), "Not/A/Name"),
        (lambda c: tag_compliance(allowed="latest", configuration=c), "allowed must be a list"),
        (lambda c: tag_compliance(page_size=0, configuration=c), "page_size must be"),
        (lambda c: layer_reuse(top=0, configuration=c), "top must be"),
        (lambda c: layer_reuse(mount_repository="x:y", configuration=c), "mount_repository"),
    ],
)
def test_bad_arguments_are_one_line_and_send_nothing(
    registry: Callable[[Handler], dict[str, Any]],
    call: Callable[[dict[str, Any]], object],
    fragment: str,
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return listing("repositories", [])

    with pytest.raises(ActivityFailed) as caught:
        call(registry(handler))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert seen == []


def test_the_validator_refuses_a_literal_pattern_that_is_not_a_regex() -> None:
    activity = {
        "name": "tags follow the convention",
        "provider": {
            "type": "python",
            "module": "chaosregistry.probes.hygiene",
            "func": "tag_compliance",
            "arguments": {"pattern": "[a-"},
        },
    }
    with pytest.raises(ConfigError) as caught:
        check_activity("steady-state-hypothesis.probes[0]", activity, {})
    assert str(caught.value) == (
        "steady-state-hypothesis.probes[0] (tags follow the convention).arguments.pattern: "
        "'[a-' is not a valid regular expression: unterminated character set at position 0"
    )
    activity["provider"]["arguments"] = {"pattern": "", "repositories": ["shop/api"]}
    check_activity("steady-state-hypothesis.probes[0]", activity, {})


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("shop-prod-1.4.2", True),
        ("shop-staging-1.5.0-rc.1", True),
        ("api-dev-2.0.0-alpha.1_build.7", True),  # build metadata, "+" spelled "_"
        ("app2-qa3-10.20.30", True),
        ("latest", False),
        ("shop-prod-1.4", False),
        ("shop-prod-01.4.2", False),  # semver: no leading zeros
        ("shop-prod-1.4.2-rc.01", False),
        ("Shop-prod-1.4.2", False),
        ("shop-prod-v1.4.2", False),
    ],
)
def test_the_default_pattern_is_project_env_semver(tag: str, ok: bool) -> None:
    assert bool(tag_pattern("").fullmatch(tag)) is ok


def test_layer_reuse_counts_an_index_and_a_shared_layer(
    registry: Callable[[Handler], dict[str, Any]],
) -> None:
    base = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "b" * 64}
    documents: dict[str, dict[str, Any]] = {}

    def image(config: str, *layers: tuple[str, int]) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": "sha256:" + config * 64, "size": 10},
            "layers": [{**base, "size": 100}]
            + [{"digest": "sha256:" + d * 64, "size": s} for d, s in layers],
        }

    documents["one:v1"] = image("1", ("c", 50))
    amd, arm = image("2", ("d", 70)), image("3", ("e", 80))
    # Fetched by digest: the body must hash to it.
    amd_digest, arm_digest = (
        "sha256:" + hashlib.sha256(json.dumps(m).encode()).hexdigest() for m in (amd, arm)
    )
    documents[f"two:{amd_digest}"], documents[f"two:{arm_digest}"] = amd, arm
    documents["two:v1"] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": amd_digest, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": arm_digest, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/_catalog":
            return listing("repositories", ["one", "two"])
        if path.endswith("/tags/list"):
            return listing("tags", ["v1", "latest"])
        repository, _, reference = path[len("/v2/") :].partition("/manifests/")
        document = documents[f"{repository}:{'v1' if reference == 'latest' else reference}"]
        headers = {"content-type": document["mediaType"]}
        return httpx.Response(200, content=json.dumps(document).encode(), headers=headers)

    result = layer_reuse(configuration=registry(handler))
    assert result["errors"] == {}
    assert (result["repositories"], result["tags"], result["manifests"]) == (2, 4, 3)
    assert result["indexes"] == 1
    # Distinct: 3 configs (30) + base (100) + c, d, e (200) = 330; base referenced 3 times.
    assert result["bytes_stored"] == 330
    assert result["bytes_referenced"] == 330 + 2 * 100
    assert result["bytes_by_repository"] == 330 + 100
    assert (result["blobs"], result["references"], result["shared_blobs"]) == (7, 9, 1)
    assert result["reuse_ratio"] == pytest.approx(530 / 330)
    assert result["top_shared"] == [
        {
            "digest": base["digest"],
            "size": 100,
            "media_type": base["mediaType"],
            "repositories": 2,
            "references": 3,
        }
    ]
    assert result["mount"] is None
