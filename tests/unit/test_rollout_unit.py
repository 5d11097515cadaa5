"""Rollout reading without a cluster: kubectl's status rules, kubelet messages, images, settings."""

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from chaosregistry.actions.deploy import deploy_bad_tag, scale_deployment
from chaosregistry.backends import BACKENDS, backend_for
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import parse_settings
from chaosregistry.kubernetes import delivery
from chaosregistry.kubernetes.rollout import (
    go_duration_seconds,
    health,
    image_digest,
    parse_pull_message,
    pod_template_patch,
    status_message,
    with_digest,
    with_tag,
)
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.reference import ImageReference


def _deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    status: dict[str, Any] | None = None,
    progressing_reason: str = "NewReplicaSetAvailable",
) -> Deployment:
    return Deployment.from_dict(
        {
            "metadata": {
                "name": "demo",
                "namespace": "chaos-demo",
                "generation": generation,
                "annotations": {"deployment.kubernetes.io/revision": "4"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "demo"}},
                "template": {
                    "metadata": {"labels": {"app": "demo"}},
                    "spec": {"containers": [{"name": "app", "image": "r.test/demo/app:1"}]},
                },
            },
            "status": {
                "observedGeneration": observed,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
                **(status or {}),
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {
                        "type": "Progressing",
                        "status": "False"
                        if progressing_reason == "ProgressDeadlineExceeded"
                        else "True",
                        "reason": progressing_reason,
                    },
                ],
            },
        }
    )


def _waiting_pod(reason: str) -> Pod:
    return Pod.from_dict(
        {
            "metadata": {"name": "demo-abc-12345"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "app",
                        "image": "x",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": reason}},
                    }
                ]
            },
        }
    )


def test_status_follows_kubectl_rollout_status_rules() -> None:
    assert status_message(_deployment()) == (True, 'deployment "demo" successfully rolled out')
    done, message = status_message(_deployment(generation=3, observed=2))
    assert not done and "spec update to be observed" in message
    done, message = status_message(_deployment(status={"updatedReplicas": 1}))
    assert not done and "1 out of 3 new replicas have been updated" in message
    done, message = status_message(_deployment(status={"replicas": 4}))
    assert not done and "1 old replicas are pending termination" in message
    done, message = status_message(_deployment(status={"availableReplicas": 2}))
    assert not done and "2 of 3 updated replicas are available" in message
    done, message = status_message(
        _deployment(status={"updatedReplicas": 1}, progressing_reason="ProgressDeadlineExceeded")
    )
    assert not done and message == 'deployment "demo" exceeded its progress deadline'


def test_health_counts_pull_errors_of_new_pods_and_flags_a_stall() -> None:
    stuck = _deployment(
        status={"updatedReplicas": 1}, progressing_reason="ProgressDeadlineExceeded"
    )
    result = health(stuck, [_waiting_pod("ImagePullBackOff"), _waiting_pod("ErrImagePull")])
    assert result["stalled"] is True and result["healthy"] is False
    assert result["available"] is True  # the old pods still serve
    assert result["image_pull_errors"] == 2
    assert result["waiting"] == {"ImagePullBackOff": 1, "ErrImagePull": 1}
    assert result["revision"] == 4 and result["images"] == {"app": "r.test/demo/app:1"}
    fine = health(_deployment(), [])
    assert fine["healthy"] is True and fine["stalled"] is False and fine["image_pull_errors"] == 0


def test_kubelet_pull_messages_give_image_time_and_size() -> None:
    pulled = parse_pull_message(
        'Successfully pulled image "r.test/demo/app:1" in 1.234s (1.5s including waiting). '
        "Image size: 2214 bytes."
    )
    assert pulled == {
        "image": "r.test/demo/app:1",
        "pull_seconds": 1.234,
        "pull_seconds_including_waiting": 1.5,
        "size_bytes": 2214,
    }
    assert parse_pull_message('Successfully pulled image "x:1" in 523ms')["pull_seconds"] == 0.523
    failed = parse_pull_message('Failed to pull image "x:does-not-exist": not found')
    assert failed["image"] == "x:does-not-exist" and failed["pull_seconds"] is None
    assert go_duration_seconds("1m2.5s") == 62.5
    assert go_duration_seconds("1.5 s") is None


def test_with_tag_replaces_tag_and_digest_but_not_a_port() -> None:
    assert with_tag("r.test:5000/demo/app:1", "bad") == "r.test:5000/demo/app:bad"
    assert with_tag("r.test:5000/demo/app", "bad") == "r.test:5000/demo/app:bad"
    assert with_tag("demo/app@sha256:" + "a" * 64, "bad") == "demo/app:bad"
    with pytest.raises(ConfigError):
        with_tag("demo/app:1", "no/slashes")


def test_pod_template_patch_drops_the_template_hash_label() -> None:
    template = {"metadata": {"labels": {"app": "demo", "pod-template-hash": "abc"}}, "spec": {}}
    assert pod_template_patch(template)["metadata"]["labels"] == {"app": "demo"}


def test_kubernetes_backend_settings_are_checked(tmp_path: Path) -> None:
    assert "kubernetes" in BACKENDS
    settings = parse_settings({"kubeconfig": str(tmp_path / "kc")}).kubernetes
    assert settings.max_pods == 10 and settings.dry_run is False
    assert settings.network_provider == "toxiproxy"
    with pytest.raises(ConfigError, match="max_pods"):
        parse_settings({"max_pods": 0})
    with pytest.raises(ConfigError, match="dry_run"):
        parse_settings({"dry_run": "yes"})
    with pytest.raises(ConfigError, match="network_provider"):
        parse_settings({"network_provider": "tc"})
    assert backend_for(parse_settings({"backend": "kubernetes", "kubeconfig": "x"})).name == (
        "kubernetes"
    )


def test_deploy_bad_tag_refuses_protected_namespaces_before_any_call(tmp_path: Path) -> None:
    # The kubeconfig does not exist: a refusal that needed the API would say so instead.
    configuration = {"backend": "kubernetes", "kubeconfig": str(tmp_path / "missing")}
    for namespace in ("kube-system", "kube-public"):
        with pytest.raises(ActivityFailed, match=f"namespace '{namespace}' is never a chaos"):
            deploy_bad_tag("demo", namespace=namespace, duration=5, configuration=configuration)
    with pytest.raises(ActivityFailed, match="duration must be a positive number"):
        deploy_bad_tag("demo", namespace="x", duration="soon", configuration=configuration)  # type: ignore[arg-type]


def test_scale_deployment_refuses_bad_input_and_protected_namespaces_before_any_call(
    tmp_path: Path,
) -> None:
    # The kubeconfig does not exist: a refusal that needed the API would say so instead.
    configuration = {"backend": "kubernetes", "kubeconfig": str(tmp_path / "missing")}
    for namespace in ("kube-system", "kube-public"):
        with pytest.raises(ActivityFailed, match=f"namespace '{namespace}' is never a chaos"):
            scale_deployment(
                "demo", replicas=3, namespace=namespace, duration=5, configuration=configuration
            )
    with pytest.raises(ActivityFailed, match="replicas"):
        scale_deployment("demo", replicas=-1, duration=5, configuration=configuration)
    with pytest.raises(ActivityFailed, match="duration must be a positive number"):
        scale_deployment("demo", replicas=2, duration=0, configuration=configuration)
    assert not (tmp_path / "missing").exists()


def test_network_chaos_builders_use_go_field_names_and_always_a_duration() -> None:
    from chaosregistry.kubernetes import chaosmesh

    spec = chaosmesh.network_chaos_spec(
        selector=chaosmesh.pod_selector("ns", {"app": "registry"}),
        action="delay",
        duration=1.5,
        mode="fixed",
        value="2",
        delay_spec=chaosmesh.delay(300, 50),
        external_targets=["10.0.0.9"],
    )
    assert spec == {
        "selector": {"namespaces": ["ns"], "labelSelectors": {"app": "registry"}},
        "mode": "fixed",
        "value": "2",
        "action": "delay",
        "direction": "to",
        "duration": "1500ms",
        "delay": {"latency": "300ms", "jitter": "50ms"},
        "externalTargets": ["10.0.0.9"],
    }
    document = chaosmesh.network_chaos("n", "ns", spec)
    assert document["apiVersion"] == "chaos-mesh.org/v1alpha1"
    assert document["metadata"] == {"name": "n", "namespace": "ns"}
    assert chaosmesh.go_duration(60) == "60s"
    with pytest.raises(ConfigError, match="needs a value"):
        chaosmesh.network_chaos_spec(
            selector={}, action="partition", duration=5, mode="fixed-percent"
        )
    with pytest.raises(ConfigError, match="needs its delay settings"):
        chaosmesh.network_chaos_spec(selector={}, action="delay", duration=5)
    with pytest.raises(ConfigError, match="positive"):
        chaosmesh.go_duration(0)
    assert chaosmesh.injection_state({"status": {}}) == "unconfirmed"
    confirmed = {"status": {"experiment": {"containerRecords": [{"phase": "Injected"}]}}}
    assert chaosmesh.injection_state(confirmed) == "confirmed"


def test_pod_kill_modes_pick_as_chaos_mesh_does() -> None:
    from chaosregistry.backends.kubernetes_pods import pick_pods

    pods = [Pod.from_dict({"metadata": {"name": f"p{i}"}}) for i in range(4)]
    assert len(pick_pods(pods, "one", None)) == 1
    assert pick_pods(pods, "all", None) == pods
    assert len(pick_pods(pods, "fixed", 3)) == 3
    assert len(pick_pods(pods, "fixed", 9)) == 4
    assert len(pick_pods(pods, "fixed-percent", 50)) == 2
    assert len(pick_pods(pods, "fixed-percent", 10)) == 1  # at least one
    with pytest.raises(ConfigError, match="needs a whole number value"):
        pick_pods(pods, "fixed", "2")
    with pytest.raises(ConfigError, match="at most 100"):
        pick_pods(pods, "fixed-percent", 150)
    with pytest.raises(ConfigError, match="must be one of"):
        pick_pods(pods, "random-max-percent", 10)


def test_push_to_running_phases_are_each_pods_own_and_the_finish_after_the_last_ready() -> None:
    from chaosregistry.kubernetes.delivery import phase_seconds

    # Two pods one after another (a rolling update): the second was first seen after the first
    # was Ready, so a phase is the mean of each pod's own time in it, not a span over both.
    followed = {
        "trigger": 100.5,
        "pods": {
            "a": {"seen": 101.0, "schedule": 101.0, "pull": 101.6, "start": 101.8},
            "b": {"seen": 102.0, "schedule": 102.2, "pull": 103.2, "start": 103.2},
        },
        "finish": 104.0,
    }
    assert phase_seconds(followed, pushed_at=100.0) == {
        "trigger": 0.5,
        "schedule": 0.1,
        "pull": 0.8,
        "start": 0.1,
        "finish": 0.8,
    }
    # A pod stuck before its pull: the pull phase and everything after it are not reached.
    stuck = {"trigger": 100.5, "pods": {"a": {"seen": 101.0, "schedule": 101.2}}, "finish": None}
    assert phase_seconds(stuck, pushed_at=100.0) == {
        "trigger": 0.5,
        "schedule": 0.2,
        "pull": None,
        "start": None,
        "finish": None,
    }
    untriggered = {"trigger": None, "pods": {}, "finish": None}
    assert set(phase_seconds(untriggered, 100.0).values()) == {None}


# -- push_to_running's registry-event phase ---------------------------------------------------
def _events_endpoints(tmp_path: Path, lines: list[str]) -> dict[str, Any]:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(line + "\n" for line in lines))
    return {
        "registry": "https://127.0.0.1:26000",
        "registry_direct": "https://127.0.0.1:26010",
        "events_file": str(events),
        "implementation": "distribution-2",
    }


def _push_event(**fields: Any) -> str:
    event = {
        "action": "push",
        "registry": "registry-1",
        "repository": "demo/app",
        "tag": "push-1",
        "digest": "sha256:aa",
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "event_time": 100.25,
        "received_at": 100.5,
        **fields,
    }
    return json.dumps(event)


def test_registry_event_is_timed_from_the_push_end_to_the_receiver(tmp_path: Path) -> None:
    endpoints = _events_endpoints(
        tmp_path,
        [
            _push_event(registry="registry-dr", received_at=100.2),  # regsync's write: not ours
            _push_event(digest="sha256:bb", received_at=100.3),  # another digest
            '{"action": "push", "trunc',  # a line being written
            _push_event(),
        ],
    )
    found = delivery.registry_event(
        endpoints,
        "https://127.0.0.1:26010/",
        repository="demo/app",
        tag="push-1",
        digest="sha256:aa",
        push_started=100.0,
        wait=0,
    )
    assert found == {"supported": True, "seconds": 0.5, "delivery_seconds": 0.25, "note": ""}


def test_registry_event_says_why_it_has_no_figure(tmp_path: Path) -> None:
    endpoints = _events_endpoints(tmp_path, [_push_event()])
    args: dict[str, Any] = {"repository": "demo/app", "tag": "push-1", "push_started": 100.0}
    cases = {
        "nothing pushed: the image was given": (endpoints, endpoints["registry"], None),
        "the push went to https://elsewhere.test, not the sandbox's registry": (
            endpoints,
            "https://elsewhere.test",
            "sha256:aa",
        ),
        "no event receiver: the sandbox runs without its second site (--second-site)": (
            {"registry": endpoints["registry"]},
            endpoints["registry"],
            "sha256:aa",
        ),
        "no push event recorded within 0 s after the rollout": (
            endpoints,
            endpoints["registry"],
            "sha256:cc",
        ),
    }
    for note, (where, url, digest) in cases.items():
        found = delivery.registry_event(where, url, digest=digest, wait=0, **args)
        assert found["seconds"] is None and found["note"] == note, found
    ggcr = {**endpoints, "implementation": "ggcr"}
    found = delivery.registry_event(ggcr, endpoints["registry"], digest="sha256:aa", wait=0, **args)
    assert found["supported"] is False and found["note"].startswith("go-containerregistry")


def test_with_digest_pins_the_digest_and_drops_tag_and_old_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert with_digest("r.test:5000/demo/app:1", digest) == f"r.test:5000/demo/app@{digest}"
    pinned = with_digest(f"r.test/demo/app@sha256:{'b' * 64}", digest)
    assert pinned == f"r.test/demo/app@{digest}"
    assert image_digest(pinned) == digest and image_digest("r.test/demo/app:1") is None
    with pytest.raises(ConfigError) as caught:
        with_digest("r.test/demo/app:1", "sha256:short")
    assert str(caught.value) == "digest 'sha256:short' is not a sha256 digest"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tag": "no spaces"}, "tag 'no spaces' is not a valid image tag"),
        ({"tag": "release", "image": "r.test/demo/app:1"}, "give image or tag, not both"),
    ],
)
def test_push_to_running_refuses_a_bad_tag_before_anything(
    arguments: dict[str, Any], message: str
) -> None:
    from chaosregistry.actions.deploy import push_to_running

    with pytest.raises(ActivityFailed) as caught:
        push_to_running("demo", **arguments)
    assert str(caught.value) == f"push_to_running: {message}"


def test_the_tag_poller_refuses_bad_arguments_before_the_first_poll() -> None:
    from chaosregistry.kubernetes import tagpoller

    settings = parse_settings({})
    for interval in (0, -1, True, "2"):
        with pytest.raises(ConfigError) as caught:
            tagpoller.run(settings, deployment="demo", tag="release", interval=interval)
        assert str(caught.value) == f"interval must be positive seconds, got {interval!r}"
    with pytest.raises(ConfigError) as caught:
        tagpoller.run(settings, deployment="demo", tag="-bad", interval=1)
    assert str(caught.value) == "tag '-bad' is not a valid image tag"


class _StaleThenObserved:
    """A client whose Deployment reads stale (generation 3, observed 2) twice, then observed:
    the moment right after a `set image`, before the controller's next sync."""

    def __init__(self) -> None:
        self.reads = 0

    def get(self, kind: type, name: str, *, namespace: str) -> Deployment:
        self.reads += 1
        return _deployment(generation=3, observed=2 if self.reads <= 2 else 3)


def test_rollback_readiness_reads_the_deployment_once_its_controller_observed_it() -> None:
    from chaosregistry.probes.rollout import _observed_deployment

    client = _StaleThenObserved()
    found = _observed_deployment(client, "demo", "web")  # type: ignore[arg-type]
    assert client.reads == 3
    assert (found.metadata.generation, found.status.observedGeneration) == (3, 3)


def test_rollback_readiness_gives_up_waiting_for_the_controller_after_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaosregistry.probes import rollout as rollout_probes

    class NeverObserved(_StaleThenObserved):
        def get(self, kind: type, name: str, *, namespace: str) -> Deployment:
            self.reads += 1
            return _deployment(generation=3, observed=2)

    monkeypatch.setattr(rollout_probes, "OBSERVE_TIMEOUT", 0.5)
    client = NeverObserved()
    found = rollout_probes._observed_deployment(client, "demo", "web")  # type: ignore[arg-type]
    assert found.status.observedGeneration == 2 and client.reads >= 2


def test_queue_seconds_is_the_wait_for_the_image_puller_before_the_pull() -> None:
    queued = parse_pull_message(
        'Successfully pulled image "r.test/a:1" in 1.5s (9.75s including waiting). '
        "Image size: 10 bytes."
    )
    assert delivery.queue_seconds(queued) == 8.25
    # An older kubelet says nothing of waiting: no wait measured, none invented.
    assert delivery.queue_seconds(parse_pull_message('Successfully pulled image "a:1" in 2s')) == 0
    assert delivery.queue_seconds(parse_pull_message('Failed to pull image "a:1": x')) == 0


class _Store:
    """An in-memory registry at the HTTP boundary: blobs and manifests of one repository."""

    def __init__(self, manifest: dict[str, Any], config: dict[str, Any]) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.config = json.dumps(config).encode()
        self.blobs[delivery_sha(self.config)] = self.config
        manifest = {**manifest, "config": {**manifest["config"], **descriptor(self.config)}}
        self.manifests["1"] = json.dumps(manifest).encode()
        self.pushed: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        media = "application/vnd.oci.image.manifest.v1+json"
        if "/manifests/" in path:
            ref = path.rsplit("/", 1)[1]
            if method == "PUT":
                self.manifests[ref] = request.content
                self.pushed.append(f"manifest {ref}")
                digest = delivery_sha(request.content)
                return httpx.Response(201, headers={"Docker-Content-Digest": digest})
            body = self.manifests.get(ref)
            if body is None:
                return httpx.Response(404)
            headers = {"Content-Type": media, "Docker-Content-Digest": delivery_sha(body)}
            return httpx.Response(200, content=body, headers=headers)
        if path.endswith("/blobs/uploads/") and method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/repo/blobs/uploads/u1"})
        if "/blobs/uploads/" in path and method == "PUT":
            digest = request.url.params["digest"]
            assert delivery_sha(request.content) == digest
            self.blobs[digest] = request.content
            self.pushed.append(f"blob {digest}")
            return httpx.Response(201)
        digest = path.rsplit("/", 1)[1]
        if digest in self.blobs:
            data = self.blobs[digest]
            return httpx.Response(200, content=b"" if method == "HEAD" else data)
        return httpx.Response(404)


def delivery_sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes) -> dict[str, Any]:
    return {"digest": delivery_sha(data), "size": len(data)}


def _push_with_layer(store: _Store, size: int) -> dict[str, Any]:
    client = RegistryClient("http://reg.test", transport=httpx.MockTransport(store.handle))
    with client:
        return delivery.push_fresh_tag(
            client, ImageReference("repo", "1"), "push-1", new_layer_bytes=size
        )


IMAGE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]},
    "history": [{"created_by": "base"}],
}
IMAGE_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
    "layers": [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + "b" * 64,
            "size": 10,
        }
    ],
}


def test_a_release_with_a_new_layer_ships_that_many_new_bytes_its_config_lists() -> None:
    store = _Store(IMAGE_MANIFEST, IMAGE_CONFIG)
    pushed = _push_with_layer(store, 50_000)
    manifest = json.loads(store.manifests["push-1"])
    assert pushed["digest"] == delivery_sha(store.manifests["push-1"])
    base, new = manifest["layers"]
    assert base == IMAGE_MANIFEST["layers"][0]
    # Uncompressed, so its digest is its diff ID and the node downloads every random byte.
    assert new["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    layer = store.blobs[new["digest"]]
    assert new["size"] == len(layer)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        (member,) = tar.getmembers()
        assert member.size == 50_000
    config = json.loads(store.blobs[manifest["config"]["digest"]])
    assert manifest["config"]["size"] == len(store.blobs[manifest["config"]["digest"]])
    assert config["rootfs"]["diff_ids"] == [*IMAGE_CONFIG["rootfs"]["diff_ids"], new["digest"]]
    assert len(config["history"]) == 2
    # The blobs go before the manifest that names them; a second release is new content again.
    assert store.pushed[-1] == "manifest push-1"
    again = _Store(IMAGE_MANIFEST, IMAGE_CONFIG)
    _push_with_layer(again, 50_000)
    assert json.loads(again.manifests["push-1"])["layers"][1]["digest"] != new["digest"]


def test_a_new_layer_on_an_index_is_refused_before_anything_is_pushed() -> None:
    index = {"schemaVersion": 2, "manifests": []}
    store = _Store({**index, "config": {}}, IMAGE_CONFIG)
    store.manifests["1"] = json.dumps(index).encode()
    with pytest.raises(ConfigError, match="single-platform image manifest, not an index"):
        _push_with_layer(store, 10)
    assert store.pushed == []
