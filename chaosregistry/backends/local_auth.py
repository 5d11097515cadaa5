"""The local backend's auth faults: the sandbox's token server cut off or slow, the token
registry trusting another signing key, the registry's htpasswd swapped.

=============================  ==============================================  =====================
fault (``kind``)               how                                             what a puller sees
=============================  ==============================================  =====================
``auth.token-server-down``     the ``token-server`` Toxiproxy hop disabled     ``auth-unavailable``
                               (every token fetch crosses it)                  for a new token
``auth.token-server-slow``     a latency toxic on that hop                     slow token fetches
``auth.token-key-rotated``     registry-token restarted trusting a fresh       ``auth`` (401 after
                               signing certificate the token server does       the token) for old
                               not sign with                                   and new tokens
``auth.credentials-swapped``   the htpasswd replaced by one with a random      ``auth`` (basic
                               password (nginx reloaded for ggcr, whose        refused)
                               nginx checks it; Distribution re-reads it)
=============================  ==============================================  =====================

Every undo proves the fault gone by authenticating: a fresh client (no cached token) fetches a
seeded manifest from the registry the fault hurt, with the sandbox's own credentials, until it
succeeds (``VERIFY_TIMEOUT``). The sandbox's own files (signing pair, credentials.json, the
original registry-token config) are never deleted: the rotated certificate is a file of its
own, and the original htpasswd is rebuilt from credentials.json.
"""

import secrets as _random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chaosregistry.backends.local_toxics import toxic_in_place
from chaosregistry.backends.plan import TOKEN_SERVER_MODES, FaultPlan, confirmed
from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.experiment.settings import RegistrySettings
from chaosregistry.faults.toxiproxy_undo import enable_proxy, remove_toxic
from chaosregistry.faults.undo import UndoError, string_param, undo_handler
from chaosregistry.oci.reference import ImageReference
from chaosregistry.osutil.files import write_text_atomic
from chaosregistry.sandbox.layout import HOP_TOKEN_SERVER, Layout, read_json
from chaosregistry.sandbox.toxiproxy import Toxiproxy

TOKEN_PATH_RESTORE = "auth.token-path-restore"
TOKEN_KEY_RESTORE = "auth.token-key-restore"
HTPASSWD_RESTORE = "auth.htpasswd-restore"
CREDENTIAL_TARGETS = ("registry",)
TOKEN_REGISTRY = "registry-token"
ROTATED_PREFIX = "token-rotated-"
# A registry-token restart or an nginx reload takes about a second here; 20 s covers a
# machine under load.
VERIFY_TIMEOUT = 20.0
# nginx balances over two replicas: this many answers in a row cover both.
CONSECUTIVE = 4


# -- verification by authenticating ------------------------------------------------------------
def _seeded_image(layout: Layout) -> ImageReference:
    catalog = read_json(layout.catalog_file) if layout.catalog_file.is_file() else []
    if not catalog:
        raise UndoError(f"{layout.catalog_file} lists no image to authenticate with")
    entry = catalog[0]
    return ImageReference.parse(f"{entry['repository']}:{entry['tag']}")


def authenticate(run_dir: Path | str, endpoint: str) -> PullError | None:
    """A fresh client (no token cached) fetches a seeded manifest from the sandbox's
    ``endpoint`` with the sandbox's credentials: None when it could, else why not."""
    layout = Layout.at(run_dir)
    image = _seeded_image(layout)
    target = RegistrySettings(sandbox_dir=layout.run_dir).resolve(None, endpoint)
    try:
        with target.client(timeout=5.0) as client:
            client.get_manifest(image.repository, image.reference)
    except PullError as exc:
        return exc
    return None


def wait_authenticates(
    run_dir: Path | str, endpoint: str, *, ok: bool, classes: tuple[ErrorClass, ...] = ()
) -> str:
    """Authenticate until it succeeds (``ok``) or fails with one of ``classes``, CONSECUTIVE
    times in a row; what was seen last. UndoError after VERIFY_TIMEOUT seconds."""
    deadline = time.monotonic() + VERIFY_TIMEOUT
    streak = 0
    seen = "nothing yet"
    while True:
        error = authenticate(run_dir, endpoint)
        wanted = error is None if ok else error is not None and error.error_class in classes
        seen = "authenticated" if error is None else f"{error.error_class}: {error}"
        streak = streak + 1 if wanted else 0
        if streak >= CONSECUTIVE:
            return seen
        if time.monotonic() > deadline:
            expected = "to authenticate" if ok else f"to fail with {', '.join(classes)}"
            raise UndoError(
                f"{endpoint} of {run_dir}: expected {expected} within {VERIFY_TIMEOUT:g}s, "
                f"last saw {seen}"
            )
        time.sleep(0.2)


def _running(layout: Layout, name: str) -> bool:
    """Whether sandbox process ``name`` runs: an undo never starts a stopped sandbox's piece
    (what it restored on disk is read when the piece starts again)."""
    from chaosregistry.sandbox.processes import process_status

    return bool(process_status(layout).get(name, {}).get("running"))


def _sandbox(run_dir: Path | None) -> Layout:
    if run_dir is None:
        raise ConfigError("configuration: auth faults need 'sandbox_dir' (the local sandbox)")
    layout = Layout.at(run_dir)
    if not layout.endpoints_file.is_file():
        raise ConfigError(f"{layout.run_dir} is not a sandbox directory (no endpoints.json)")
    return layout


# -- the token path: one fault at a time ----------------------------------------------------
def _refuse_busy_token_path(layout: Layout, api_url: str, proxy: str | None) -> None:
    """ConfigError when a fault is on the token path already: the token-server hop cut, slowed
    or partitioned, or registry-token trusting another key. Each undo proves itself by a full
    token authentication, which another fault on the same path would keep failing; and the
    hop's undo enables it, which must never end another fault's cut."""
    if _bundle(layout.config_file(TOKEN_REGISTRY)) != str(layout.token_cert_file):
        raise ConfigError(
            "a token-key fault is already active on registry-token (the token path takes one "
            "fault at a time): restore it first"
        )
    if proxy is None:
        return
    with Toxiproxy(api_url) as toxiproxy:
        current = toxiproxy.proxy(proxy)
    if current.get("enabled") is not True or current.get("toxics"):
        raise ConfigError(
            f"a fault is already active on the {HOP_TOKEN_SERVER} hop (the token path takes "
            "one fault at a time): restore it first"
        )


# -- the token server: down or slow ------------------------------------------------------------
def token_server_plan(
    run_dir: Path | None, api_url: str, proxy: str, mode: str, latency_ms: int
) -> FaultPlan:
    """``auth.token-server-<mode>`` on the ``token-server`` hop's Toxiproxy ``proxy``."""
    if mode not in TOKEN_SERVER_MODES:
        raise ConfigError(f"mode must be one of {', '.join(TOKEN_SERVER_MODES)}, got {mode!r}")
    layout = _sandbox(run_dir)
    _refuse_busy_token_path(layout, api_url, proxy)
    toxic = f"chaosregistry-token-slow-{_random.token_hex(4)}" if mode == "slow" else ""

    def apply() -> dict[str, Any]:
        applied: dict[str, Any] = {"toxiproxy": api_url, "proxy": proxy}
        with Toxiproxy(api_url) as toxiproxy:
            if mode == "down":
                toxiproxy.set_enabled(proxy, False)
            else:
                toxiproxy.add_toxic(
                    proxy,
                    name=toxic,
                    type="latency",
                    stream="downstream",
                    attributes={"latency": latency_ms, "jitter": 0},
                )
                applied.update(toxic_in_place(toxiproxy, proxy, toxic))
        if mode == "down":
            # Proven: a client without a token cannot get one.
            applied["seen"] = wait_authenticates(
                layout.run_dir, "token_registry", ok=False, classes=(ErrorClass.AUTH_UNAVAILABLE,)
            )
            applied["enabled"] = False
            applied.update(confirmed(f"a fresh client got no token: {applied['seen']}"))
        else:
            applied["toxic"] = toxic
        return applied

    parameters: dict[str, Any] = {"mode": mode}
    if mode == "slow":
        parameters["latency_ms"] = latency_ms
    return FaultPlan(
        kind=f"auth.token-server-{mode}",
        target=f"auth:{HOP_TOKEN_SERVER}",
        parameters=parameters,
        apply=apply,
        undo={
            "kind": TOKEN_PATH_RESTORE,
            "params": {
                "run_dir": str(layout.run_dir),
                "api_url": api_url,
                "proxy": proxy,
                "toxic": toxic,
            },
        },
    )


@undo_handler(TOKEN_PATH_RESTORE)
def restore_token_path(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Enable the token-server hop (``down``) or remove the fault's toxic (``slow``), then prove
    a fresh client gets a token the token registry accepts. Idempotent. For ``slow``, returns
    the hop's byte counters read once the toxic is gone (``toxiproxy.toxic``'s)."""
    api_url, proxy = string_param(params, "api_url"), string_param(params, "proxy")
    layout = Layout.at(string_param(params, "run_dir"))
    if not layout.endpoints_file.is_file() or not _running(layout, "toxiproxy"):
        return None  # a restarted Toxiproxy makes its hops from its config: enabled, no toxics
    toxic = params.get("toxic")
    observed: Mapping[str, Any] | None = None
    if isinstance(toxic, str) and toxic:
        observed = remove_toxic({"api_url": api_url, "proxy": proxy, "toxic": toxic})
    else:
        enable_proxy({"api_url": api_url, "proxy": proxy})
    wait_authenticates(layout.run_dir, "token_registry", ok=True)
    return observed


# -- the token registry trusts another key -----------------------------------------------------
def _bundle(config_file: Path) -> str:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    return str(config["auth"]["token"]["rootcertbundle"])


def _set_bundle(config_file: Path, bundle: Path) -> None:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config["auth"]["token"]["rootcertbundle"] = str(bundle)
    text = "# Generated by chaosregistry.sandbox.\n" + yaml.safe_dump(config, sort_keys=False)
    write_text_atomic(config_file, text, mode=0o600)  # it holds the http secret


def _restart_token_registry(layout: Layout) -> int:
    from chaosregistry.sandbox import start_process, stop_process

    stop_process(layout.run_dir, TOKEN_REGISTRY)
    return start_process(layout.run_dir, TOKEN_REGISTRY)


def token_key_plan(run_dir: Path | None, api_url: str, proxy: str | None) -> FaultPlan:
    """``auth.token-key-rotated``: registry-token trusts a fresh certificate only (refused
    while the token-server hop, Toxiproxy ``proxy``, carries a fault)."""
    from chaosregistry.sandbox.tokens import ensure_signing_pair

    layout = _sandbox(run_dir)
    config_file = layout.config_file(TOKEN_REGISTRY)
    _refuse_busy_token_path(layout, api_url, proxy)
    name = f"{ROTATED_PREFIX}{_random.token_hex(4)}"
    rotated_cert = layout.secrets_dir / f"{name}.crt"
    rotated_key = layout.secrets_dir / f"{name}.key"

    def apply() -> dict[str, Any]:
        ensure_signing_pair(rotated_key, rotated_cert)
        rotated_key.unlink()  # only the certificate is trusted; nothing signs with it
        _set_bundle(config_file, rotated_cert)
        started = time.monotonic()
        pid = _restart_token_registry(layout)
        seen = wait_authenticates(
            layout.run_dir, "token_registry", ok=False, classes=(ErrorClass.AUTH,)
        )
        return {
            "registry": TOKEN_REGISTRY,
            "pid": pid,
            "trusted": rotated_cert.name,
            "seen": seen,
            "seconds_to_refuse": time.monotonic() - started,
            **confirmed(f"{TOKEN_REGISTRY} refuses a fresh token: {seen}"),
        }

    return FaultPlan(
        kind="auth.token-key-rotated",
        target=f"auth:{TOKEN_REGISTRY}",
        parameters={"target": TOKEN_REGISTRY},
        apply=apply,
        undo={
            "kind": TOKEN_KEY_RESTORE,
            "params": {"run_dir": str(layout.run_dir), "rotated": name},
        },
    )


@undo_handler(TOKEN_KEY_RESTORE)
def restore_token_key(params: Mapping[str, Any]) -> None:
    """Point registry-token back at the sandbox's signing certificate and restart it (when it
    names another), prove a fresh token is accepted, then delete the rotated certificate.
    Idempotent; another fault's rotation (this one never got to write its own) is left alone."""
    layout = Layout.at(string_param(params, "run_dir"))
    rotated = string_param(params, "rotated")
    if not rotated.startswith(ROTATED_PREFIX) or "/" in rotated:
        raise UndoError(f"undo params name no rotated certificate of ours: {rotated!r}")
    config_file = layout.config_file(TOKEN_REGISTRY)
    if not layout.endpoints_file.is_file() or not config_file.is_file():
        return  # the sandbox is gone, and with it whatever it trusted
    rotated_cert = layout.secrets_dir / f"{rotated}.crt"
    current = _bundle(config_file)
    running = _running(layout, TOKEN_REGISTRY)
    if current == str(rotated_cert):
        _set_bundle(config_file, layout.token_cert_file)
        if running:
            _restart_token_registry(layout)
    if running and current in (str(rotated_cert), str(layout.token_cert_file)):
        wait_authenticates(layout.run_dir, "token_registry", ok=True)
    for suffix in (".crt", ".key"):
        (layout.secrets_dir / f"{rotated}{suffix}").unlink(missing_ok=True)


# -- the registry's htpasswd swapped ------------------------------------------------------------
def credentials_plan(run_dir: Path | None, target: str) -> FaultPlan:
    """``auth.credentials-swapped``: the htpasswd of ``target`` (the registry behind nginx)
    holds the sandbox user with another, random password that nobody is told."""
    from chaosregistry.sandbox.credentials import htpasswd_accepts, load_credentials

    if target not in CREDENTIAL_TARGETS:
        raise ConfigError(
            f"unknown credentials target {target!r} (known: {', '.join(CREDENTIAL_TARGETS)})"
        )
    layout = _sandbox(run_dir)
    creds = load_credentials(layout.run_dir)
    if not htpasswd_accepts(layout.htpasswd_file, creds):
        raise ConfigError(
            f"the htpasswd of {layout.run_dir} does not hold the sandbox's credentials "
            "(a credentials fault is already active?): restore it first"
        )

    def apply() -> dict[str, Any]:
        from chaosregistry.sandbox.credentials import Credentials, write_htpasswd

        write_htpasswd(layout.htpasswd_file, Credentials(creds.username, _random.token_urlsafe(24)))
        started = time.monotonic()
        nginx_pid = _reload_if_nginx_checks(layout)
        seen = wait_authenticates(
            layout.run_dir, "registry_direct", ok=False, classes=(ErrorClass.AUTH,)
        )
        return {
            "target": target,
            "nginx_pid": nginx_pid,
            "seen": seen,
            "seconds_to_refuse": time.monotonic() - started,
            **confirmed(f"{target} refuses the sandbox's credentials: {seen}"),
        }

    return FaultPlan(
        kind="auth.credentials-swapped",
        target=f"auth:{target}",
        parameters={"target": target},
        apply=apply,
        undo={"kind": HTPASSWD_RESTORE, "params": {"run_dir": str(layout.run_dir)}},
    )


def _reload_if_nginx_checks(layout: Layout) -> int | None:
    """Reload nginx when it is the one checking the htpasswd (ggcr replicas have no auth);
    Distribution re-reads the file when its modification time changes."""
    from chaosregistry.sandbox import reload_nginx

    endpoints = read_json(layout.endpoints_file)
    if endpoints.get("implementation") != "ggcr":
        return None
    return reload_nginx(layout.run_dir)


@undo_handler(HTPASSWD_RESTORE)
def restore_htpasswd(params: Mapping[str, Any]) -> None:
    """Write the htpasswd again from the sandbox's credentials.json (when it does not hold
    them), reload nginx where it checks it, and prove those credentials authenticate."""
    from chaosregistry.sandbox.credentials import (
        htpasswd_accepts,
        load_credentials,
        write_htpasswd,
    )

    layout = Layout.at(string_param(params, "run_dir"))
    if not layout.endpoints_file.is_file() or not layout.credentials_file.is_file():
        return  # the sandbox is gone
    creds = load_credentials(layout.run_dir)
    running = _running(layout, "nginx")
    if not htpasswd_accepts(layout.htpasswd_file, creds):
        write_htpasswd(layout.htpasswd_file, creds)
        if running:
            _reload_if_nginx_checks(layout)
    if running:
        wait_authenticates(layout.run_dir, "registry_direct", ok=True)
