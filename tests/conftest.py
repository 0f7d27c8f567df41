"""Fixtures: a libvirt connection and real test guests (:mod:`libvirt_nitro.testing.guest`).

The guests are transient libvirt domains named ``nitro-test-*``; they are destroyed when the
fixture ends, whatever the tests did, and stale ones from a killed run are destroyed first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from libvirt_nitro.testing.guest import GuestImage, TestGuest
from tests.support import require

URI = "qemu:///system"
#: Tests that restart libvirtd, closing every connection (the session fixtures' too): last.
RUN_LAST = {"test_libvirtd_restart_mid_trace", "test_libvirtd_restart_mid_cli_trace"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of :data:`RUN_LAST` after all the others."""
    items.sort(key=lambda item: item.name.split("[")[0] in RUN_LAST)


PREFIX = "nitro-test-"
#: tests/bed runs inside the emulated test bed (tests/test_kernel_nitro.py boots it), not here.
collect_ignore = ["bed"]


@pytest.fixture(scope="session")
def conn() -> Any:
    """A read-write ``virConnect`` to the local system QEMU driver (needs root + libvirtd)."""
    require(os.geteuid() == 0, "root (qemu:///system, ptrace access to QEMU)")
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        connection = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        require(False, f"libvirtd answering on {URI} ({exc.get_error_message()})")
    _destroy_stale_guests(connection)
    yield connection
    connection.close()


def _destroy_stale_guests(connection: Any) -> None:
    """Destroy test domains left by a test run that died (their name ends with its pid)."""
    for dom in connection.listAllDomains():
        name = dom.name()
        owner = name.rsplit("-", 1)[-1]
        if name.startswith(PREFIX) and owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            persistent = dom.isPersistent()  # a transient domain is gone once destroyed
            if dom.isActive():
                TestGuest(dom, None).destroy()
            if persistent:
                dom.undefine()


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The test guest image, built from Debian packages (cached after the first build)."""
    return GuestImage.build()


@pytest.fixture(scope="session")
def tcg_guest(conn: Any, guest_image: GuestImage) -> Iterator[TestGuest]:
    """A booted 2-vCPU TCG test guest whose workload answers on its control port."""
    guest = TestGuest.start(conn, f"{PREFIX}tcg-{os.getpid()}", guest_image, accel="qemu")
    try:
        yield guest
    finally:
        guest.destroy()


@pytest.fixture(scope="module")
def kvm_guest(conn: Any, guest_image: GuestImage) -> Iterator[TestGuest]:
    """A started 2-vCPU KVM domain (its guest hangs in early boot on this PVM host, but
    QEMU holds its kvm-vm and kvm-vcpu fds)."""
    require(os.path.exists("/dev/kvm"), "/dev/kvm")
    guest = TestGuest.start(conn, f"{PREFIX}kvm-{os.getpid()}", guest_image, accel="kvm")
    try:
        yield guest
    finally:
        guest.destroy()


@pytest.fixture
def inactive_domain(conn: Any, guest_image: GuestImage) -> Iterator[Any]:
    """A defined but never started (persistent) test domain."""
    from libvirt_nitro.testing.guest import domain_xml

    dom = conn.defineXML(domain_xml(f"{PREFIX}off-{os.getpid()}", guest_image))
    try:
        yield dom
    finally:
        dom.undefine()


@pytest.fixture(scope="session")
def libvirt_loop(conn: Any) -> Iterator[Any]:
    """libvirt's default event loop (run by the test thread while it traces), woken every
    50 ms.

    It depends on ``conn`` so that the connection is opened before a loop exists: a
    connection opened with a loop registered negotiates keepalive, and libvirtd closes it
    after 30 s in which the test did not run the loop (booting a guest, say).
    """
    import libvirt

    libvirt.virEventRegisterDefaultImpl()
    timer = libvirt.virEventAddTimeout(50, lambda *_: None, None)
    yield libvirt
    libvirt.virEventRemoveTimeout(timer)
