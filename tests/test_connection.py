"""Connections and look-ups, on libvirt's test driver (needs no daemon, no QEMU)."""

from __future__ import annotations

import pytest

from libvirt_nitro.domain import lookup_domain, open_connection, resolve
from libvirt_nitro.errors import ConnectionFailed, DomainNotFound, NotQemuDomain

TEST_URI = "test:///default"


@pytest.fixture
def test_conn():
    conn = open_connection(TEST_URI)
    yield conn
    conn.close()


def test_lookup_by_name_uuid_and_id(test_conn) -> None:
    dom = lookup_domain(test_conn, "test")
    assert lookup_domain(test_conn, dom.UUIDString()).name() == "test"
    assert lookup_domain(test_conn, str(dom.ID())).name() == "test"


def test_unknown_domain_is_one_clear_error(test_conn) -> None:
    with pytest.raises(DomainNotFound, match="no domain .* 'nope' at test:///default"):
        lookup_domain(test_conn, "nope")


def test_a_domain_of_another_driver_is_not_a_qemu_domain(test_conn) -> None:
    with pytest.raises(NotQemuDomain, match="'test' is not a QEMU domain"):
        resolve(lookup_domain(test_conn, "test"))


def test_unreachable_uri_is_a_connection_error() -> None:
    with pytest.raises(ConnectionFailed, match="cannot connect to bogus:///x"):
        open_connection("bogus:///x")
