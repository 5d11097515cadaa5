"""The pure parts of TLS inspection: SAN matching, days left, how a certificate is described."""

import datetime
from pathlib import Path

import pytest

from chaosregistry.trust.pki import ensure_pki, issue, load_cert, server_spec
from chaosregistry.trust.tlsinspect import (
    days_left,
    describe_chain_entry,
    describe_leaf,
    hostname_matches,
    subject_alt_names,
)

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("host", "dns_names", "ips", "expected"),
    [
        ("registry.example.test", ["registry.example.test"], [], True),
        ("REGISTRY.Example.test.", ["registry.example.test"], [], True),  # case, trailing dot
        ("a.example.test", ["*.example.test"], [], True),
        ("example.test", ["*.example.test"], [], False),  # a wildcard needs its label
        ("a.b.example.test", ["*.example.test"], [], False),  # and covers one label only
        ("a.test", ["*.test"], [], False),  # never a whole top-level domain
        ("foo.example.test", ["f*.example.test"], [], False),  # partial wildcards: no
        ("127.0.0.1", ["127.0.0.1"], [], False),  # an IP matches IP SANs only
        ("127.0.0.1", [], ["127.0.0.1"], True),
        ("127.0.0.2", [], ["127.0.0.1"], False),
        ("::1", [], ["0:0:0:0:0:0:0:1"], True),  # compared as addresses, not text
        ("localhost", [], ["127.0.0.1"], False),
        ("registry.example.test", ["elsewhere.invalid"], ["127.0.0.1"], False),
    ],
)
def test_hostname_matches_follows_rfc6125(
    host: str, dns_names: list[str], ips: list[str], expected: bool
) -> None:
    assert hostname_matches(host, dns_names, ips) is expected


def test_days_left_is_fractional_and_negative_once_passed() -> None:
    assert days_left(NOW + datetime.timedelta(days=365), NOW) == 365.0
    assert days_left(NOW + datetime.timedelta(hours=36), NOW) == 1.5
    assert days_left(NOW - datetime.timedelta(days=2, hours=12), NOW) == -2.5


def test_a_pki_leaf_is_described_with_its_sans_and_window(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ())
    not_before = NOW - datetime.timedelta(days=10)
    not_after = NOW + datetime.timedelta(days=20, hours=6)
    issue(pki, server_spec("leaf", not_before=not_before, not_after=not_after))
    cert = load_cert(pki.cert("leaf"))

    assert subject_alt_names(cert) == (("localhost",), ("127.0.0.1",))
    described = describe_leaf(cert, NOW)
    assert described == {
        "subject": "CN=localhost",
        "issuer": "CN=chaosregistry-ca",
        "sans": ["localhost", "127.0.0.1"],
        "not_before": "2026-05-22T12:00:00Z",
        "not_after": "2026-06-21T18:00:00Z",
        "days_left": 20.25,
    }
    assert describe_chain_entry(load_cert(pki.ca_cert), NOW)["subject"] == "CN=chaosregistry-ca"


def test_a_certificate_without_sans_matches_nothing(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ())
    issue(pki, server_spec("bare", dns_names=(), ip_addresses=()))
    cert = load_cert(pki.cert("bare"))
    assert subject_alt_names(cert) == ((), ())
    assert hostname_matches("bare", *subject_alt_names(cert)) is False
