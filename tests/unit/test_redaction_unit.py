"""The redactor learns every secret a run can see, and scrubs it from data, text and files.

A distinct value per channel: the experiment's secrets, the environment, the vars file, a URL's
userinfo, an Authorization value; and the secrets known only by their shape (issued tokens).
The game day's own scrubbing, end to end, is in test_secrets_gameday.py.
"""

import base64
import html
import json
import os
from pathlib import Path

import pytest
from support.reports import gameday, journal, write_run

from chaosregistry.redaction import REDACTED, Redactor, is_secret_key, scrub_patterns
from chaosregistry.reports import build_report

SECRET = "canary-secret-Qw3rty"
ENV = "canary-env-Zx9Kl2"
VARS = "canary-vars-Mn5Bv7"
URL_PASSWORD = "canary-url-Hg4Fd1"
BASIC_PASSWORD = "canary-basic-Tr6Ye8"
BEARER = "canary-bearer-Ui3Op0x"
BASIC = base64.b64encode(f"webhook-bot:{BASIC_PASSWORD}".encode()).decode()
# The shape of a token a registry's token server issues (header.payload.signature).
JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjaGFvc3JlZ2lzdHJ5Iiwic3ViIjoiY2hhb3MifQ."
    "c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)


def learned(experiment: object, vars_data: object = None, **environ: str) -> set[str]:
    return set(Redactor.for_experiment(experiment, vars_data, environ=environ).values)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("registry_password", True),
        ("passwd", True),
        ("db_pass", True),
        ("registry_auth", True),
        ("sentry_dsn", True),
        ("apiKey", True),
        ("X-Registry-Auth", True),
        ("Authorization", True),
        ("bearer", True),
        ("CHAOSREGISTRY_PASSWORD", True),
        ("github_token", True),
        ("registrypassword", True),
        ("client_credentials", True),
        # where a secret lives or what it is called, not the secret
        ("token_registry_url", False),
        ("signing_key_file", False),
        ("secret_name", False),
        ("signing_public_key", False),
        # words that merely contain a short secret word
        ("bypass_cache", False),
        ("monkey", False),
        ("author", False),
        ("registry_url", False),
        ("run_id", False),
    ],
)
def test_secret_keys_are_named_by_their_words(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_experiment_secrets_are_learned_env_resolved_and_identities_are_not() -> None:
    experiment = {
        "secrets": {
            "registry": {"registry_username": "chaos", "registry_password": SECRET},
            "notify": {"webhook_token": {"type": "env", "key": "NOTIFY_TOKEN"}},
        }
    }
    values = learned(experiment, NOTIFY_TOKEN=ENV)
    assert {SECRET, ENV} <= values
    assert "chaos" not in values  # a user name would garble "chaosregistry.probes.pull"
    redactor = Redactor.for_experiment(experiment, environ={"NOTIFY_TOKEN": ENV})
    assert redactor.text("chaosregistry.probes.pull") == "chaosregistry.probes.pull"


def test_configuration_keys_that_name_credentials_are_learned_at_any_depth() -> None:
    experiment = {
        "configuration": {
            "chaosregistry": {"registry_url": "https://127.0.0.1:5000", "passwd": "pw-one-1111"},
            "notify": {"sentry_dsn": "dsn-two-2222", "X-Api-Key": "key-three-3333"},
            "token_timeout": 30,  # a number under a credential key is a setting
            "token_registry_url": "https://127.0.0.1:5001",
        }
    }
    values = learned(experiment)
    assert {"pw-one-1111", "dsn-two-2222", "key-three-3333"} <= values
    assert not values & {"30", "https://127.0.0.1:5000", "https://127.0.0.1:5001"}


def test_vars_file_secrets_and_credential_configuration_are_learned() -> None:
    experiment = {"configuration": {"notify_passwd": "placeholder"}}
    vars_data = {
        "configuration": {"notify_passwd": VARS},
        "secrets": {"registry": {"registry_password": "vars-secret-4444"}},
    }
    assert {VARS, "vars-secret-4444"} <= learned(experiment, vars_data)


def test_the_environment_contributes_credential_named_variables() -> None:
    experiment = {"configuration": {"api": {"type": "env", "key": "PLAIN_NAME"}}}
    values = learned(
        experiment,
        CHAOSREGISTRY_PASSWORD=ENV,  # our own fallback, read by settings
        REGISTRY_TOKEN="tok-five-5555",
        PLAIN_NAME="not-a-secret-value",  # a non-credential key, a non-credential name
        FEATURE_TOKEN="1",  # a switch
        SSH_AUTH_SOCK="/tmp/ssh-abc/agent.42",  # a path
    )
    assert {ENV, "tok-five-5555"} <= values
    assert not values & {"not-a-secret-value", "1", "/tmp/ssh-abc/agent.42"}


def test_a_configuration_value_from_a_credential_named_variable_is_learned() -> None:
    experiment = {"configuration": {"webhook": {"type": "env", "key": "WEBHOOK_SECRET"}}}
    # short for the environment scan, learned because the configuration reads it
    assert "s3cr" in learned(experiment, WEBHOOK_SECRET="s3cr")


def test_url_userinfo_is_learned_and_scrubbed_by_shape() -> None:
    url = f"https://ci-bot:{URL_PASSWORD}@registry.example:5000"
    values = learned({"configuration": {"registry_url": url}})
    assert {URL_PASSWORD, f"ci-bot:{URL_PASSWORD}"} <= values
    # a URL the redactor was never told about: its password goes by shape
    text = "pull from docker://someone:unknown-pass-777@mirror.example/x failed"
    assert scrub_patterns(text) == f"pull from docker://someone:{REDACTED}@mirror.example/x failed"
    assert scrub_patterns("https://127.0.0.1:5000/v2/") == "https://127.0.0.1:5000/v2/"
    digest = "https://host:5000/repo@sha256:" + "a" * 64
    assert scrub_patterns(digest) == digest


def test_basic_and_bearer_values_are_learned_with_the_decoded_password() -> None:
    experiment = {
        "configuration": {
            "webhook_header": f"Basic {BASIC}",  # a key that names no credential: by value
            "status_header": f"Bearer {BEARER}",
        }
    }
    values = learned(experiment)
    assert {BASIC, f"Basic {BASIC}", f"webhook-bot:{BASIC_PASSWORD}", BASIC_PASSWORD} <= values
    assert {BEARER, f"Bearer {BEARER}"} <= values
    redactor = Redactor.for_experiment(experiment, environ={})
    assert BASIC_PASSWORD not in redactor.text(f"a log line that decoded it: {BASIC_PASSWORD}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {REDACTED}"),
        (f"token={JWT}&x=1", f"token={REDACTED}&x=1"),
        ("authorization: bearer 0123456789abcdefXYZ", f"authorization: bearer {REDACTED}"),
        (f"Authorization: Basic {BASIC}", f"Authorization: Basic {REDACTED}"),
        # prose and challenges stay as they are
        ("Basic authentication failed", "Basic authentication failed"),
        ("Bearer authentication required", "Bearer authentication required"),
        (
            'www-authenticate: Bearer realm="https://127.0.0.1:5004/token",service="x"',
            'www-authenticate: Bearer realm="https://127.0.0.1:5004/token",service="x"',
        ),
    ],
)
def test_issued_tokens_are_scrubbed_by_their_shape(text: str, expected: str) -> None:
    assert Redactor([]).text(text) == expected
    assert Redactor([]).scrub_text(text) == expected


def test_scrub_text_catches_escaped_forms() -> None:
    secret = "p<w>&'\"d-9999"
    redactor = Redactor([secret])
    for form in (json.dumps({"x": secret}), f"<td>{html.escape(secret)}</td>"):
        assert "9999" not in redactor.scrub_text(form), form


def test_scrub_file_rewrites_only_files_holding_a_secret_and_keeps_their_mode(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"secrets": {"p": SECRET}, "out": f"x {SECRET} y"}, indent=2))
    os.chmod(journal, 0o600)
    clean = tmp_path / "load" / "status.json"
    clean.parent.mkdir()
    clean.write_text('{"state": "finished"}')
    before = clean.stat().st_mtime_ns
    binary = tmp_path / "chart.png"
    binary.write_bytes(b"\x89PNG\xff\xfe" + SECRET.encode())

    changed = Redactor([SECRET]).scrub_tree(tmp_path)

    assert changed == [journal]
    assert SECRET not in journal.read_text()
    assert json.loads(journal.read_text())["out"] == f"x {REDACTED} y"  # still JSON
    assert journal.stat().st_mode & 0o777 == 0o600
    assert clean.stat().st_mtime_ns == before
    assert binary.read_bytes().endswith(SECRET.encode())  # not text: not ours to rewrite


def test_lines_scrubs_what_is_printed() -> None:
    printed: list[str] = []
    say = Redactor([SECRET]).lines(printed.append)
    say(f"  chaos | denied for {SECRET}")
    assert printed == [f"  chaos | denied for {REDACTED}"]


def test_the_report_configuration_redacts_widened_keys_and_keeps_locations() -> None:
    redactor = Redactor([])
    shown = redactor.configuration(
        {
            "chaosregistry": {"registry_auth": f"Basic {BASIC}", "passwd": "x"},
            "sentry_dsn": "postgres://u:p@db/x",
            "signing_key_file": "/etc/keys/signing.key",
        }
    )
    assert shown["chaosregistry"] == {"registry_auth": REDACTED, "passwd": REDACTED}
    assert shown["sentry_dsn"] == REDACTED
    assert shown["signing_key_file"] == "/etc/keys/signing.key"


def test_no_report_artifact_carries_values_of_widened_keys_or_authorization_values(
    tmp_path: Path,
) -> None:
    data = journal()
    data["experiment"]["configuration"].update(
        {
            "notify": {"passwd": "pw-report-5151", "sentry_dsn": "dsn-report-6161"},
            "chaosregistry": {
                "registry_url": "http://127.0.0.1:1",
                "registry_auth": f"Basic {BASIC}",
            },
            "status_header": f"Bearer {BEARER}",
        }
    )
    # Each value leaks into a probe's error text, as a careless extension might do.
    data["run"][1]["output"]["first_error"] = (
        f"pw-report-5151 dsn-report-6161 {BASIC} {BASIC_PASSWORD} {BEARER} {JWT}"
    )
    result = build_report([write_run(tmp_path / "run", data, gameday())], tmp_path / "out")
    for path in (result.html, result.summary_json, result.junit_xml, result.summary_md):
        text = path.read_text()
        for secret in ("pw-report-5151", "dsn-report-6161", BASIC, BASIC_PASSWORD, BEARER, JWT):
            assert secret not in text, f"{secret!r} in {path.name}"


def test_credentials_in_an_activity_are_learned_and_its_secret_scopes_are_not() -> None:
    experiment = {
        "method": [
            {
                "type": "probe",
                "name": "webhook-up",
                "provider": {
                    "type": "http",
                    "url": "https://hooks.example/status",
                    "headers": {"Authorization": "Bearer only-letters-token-here"},
                },
            },
            {
                "type": "action",
                "name": "start-pull-load",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.actions.load",
                    "func": "start_pull_load",
                    "secrets": ["registry"],
                    "arguments": {"password": "${registry_password}", "users": 2},
                },
            },
        ]
    }
    values = learned(experiment)
    assert "Bearer only-letters-token-here" in values  # no digit: the shape alone misses it
    assert not values & {"registry", "${registry_password}", "2"}
