"""The one place that makes Kubernetes API clients (lightkube) and translates their errors.

Every client is built from an explicit kubeconfig path with explicit timeouts; nothing reads
or changes a library-wide default configuration, and proxy variables from the environment are
ignored (the test cluster is on 127.0.0.1). Custom resources (Chaos Mesh kinds) are described
by :func:`custom_resource`, so callers never build lightkube's generic classes themselves.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import User
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from chaosregistry.errors import ChaosRegistryError

DEFAULT_TIMEOUT = 15.0
CONNECT_TIMEOUT = 5.0
FIELD_MANAGER = "chaosregistry"


class KubeError(ChaosRegistryError):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0 when none came back)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def client(
    kubeconfig: Path | str,
    *,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    context: str | None = None,
) -> Client:
    """A lightkube client for ``kubeconfig`` whose every request has ``timeout`` seconds."""
    config = _load(Path(kubeconfig), context)
    return _client(config, namespace, timeout)


def client_with_token(
    kubeconfig: Path | str,
    token: str,
    *,
    namespace: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Client:
    """A client for ``kubeconfig``'s cluster that authenticates with a bearer ``token`` only.

    For acting as a service account (a token from the TokenRequest API).
    """
    config = _load(Path(kubeconfig), None)
    as_token = SingleConfig(
        context_name=config.context_name,
        context=config.context,
        cluster=config.cluster,
        user=User(token=token),
        fname=config.fname,
    )
    return _client(as_token, namespace, timeout)


def _load(path: Path, context: str | None) -> SingleConfig:
    if not path.is_file():
        raise KubeError(f"kubeconfig {path} does not exist")
    config = KubeConfig.from_file(path).get(context_name=context)
    if config is None:
        raise KubeError(f"kubeconfig {path}: no context {context or '(current)'}")
    return config


def _client(config: SingleConfig, namespace: str | None, timeout: float) -> Client:
    return Client(
        config=config,
        namespace=namespace,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        field_manager=FIELD_MANAGER,
        trust_env=False,
    )


def describe(exc: BaseException) -> KubeError:
    """One line for an API or transport error: HTTP status, reason and the server's message."""
    if isinstance(exc, ApiError):
        status = exc.status
        return KubeError(
            f"Kubernetes API {status.code} {status.reason}: {status.message}",
            status=int(status.code or 0),
            reason=str(status.reason or ""),
        )
    if isinstance(exc, httpx.TimeoutException):
        return KubeError(f"Kubernetes API timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.HTTPError):
        return KubeError(f"Kubernetes API unreachable: {exc}")
    return KubeError(f"Kubernetes API call failed: {exc}")


@contextmanager
def translated() -> Iterator[None]:
    """Turn lightkube and httpx errors raised inside the block into :class:`KubeError`."""
    try:
        yield
    except (ApiError, httpx.HTTPError) as exc:
        raise describe(exc) from None


def get_if_exists(client: Client, res: Any, name: str, namespace: str | None = None) -> Any:
    """The object, or None when the API answers 404 (absent, or deleted since); any other
    error is a :class:`KubeError`. For callers where "gone" is an answer, not a failure."""
    try:
        with translated():
            return client.get(res, name, namespace=namespace)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def custom_resource(
    group: str, version: str, kind: str, plural: str, *, namespaced: bool = True
) -> Any:
    """The lightkube resource class for a custom kind (e.g. Chaos Mesh's ``NetworkChaos``)."""
    factory = create_namespaced_resource if namespaced else create_global_resource
    return factory(group, version, kind, plural)
