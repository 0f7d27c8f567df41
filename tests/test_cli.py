"""The command line, run as a user runs it: a subprocess, output and exit status checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nitro(*args: str, user: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "libvirt_nitro", *args]
    if user == "nobody":
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("libvirt-nitro: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_list_shows_running_guests_with_qemu_details(tcg_guest, kvm_guest) -> None:
    done = nitro("-c", "qemu:///system", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    tcg, kvm = rows[tcg_guest.name], rows[kvm_guest.name]
    assert (tcg["state"], tcg["accel"], len(tcg["vcpu_threads"])) == ("running", "tcg", 2)
    assert (kvm["state"], kvm["accel"], len(kvm["vcpu_threads"])) == ("running", "kvm", 2)
    with open(f"/run/libvirt/qemu/{tcg_guest.name}.pid") as pidfile:
        assert tcg["pid"] == int(pidfile.read())

    text = nitro("-c", "qemu:///system", "list")
    assert text.returncode == 0
    line = next(line for line in text.stdout.splitlines() if tcg_guest.name in line)
    assert "tcg" in line and str(tcg["pid"]) in line


def test_inspect_text_and_json(kvm_guest) -> None:
    done = nitro("-c", "qemu:///system", "inspect", kvm_guest.name, "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["accel"] == "kvm" and len(view["vcpus"]) == 2
    assert [v["index"] for v in view["kvm_fds"]["vcpus"]] == [0, 1]

    text = nitro("-c", "qemu:///system", "inspect", kvm_guest.name).stdout
    assert f"pid {view['pid']}" in text
    assert f"QEMU fd {view['kvm_fds']['vm']['qemu_fd']} duplicated" in text


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("-c", "qemu:///system", "inspect", "no-such-domain"), ("no domain", "no-such-domain")),
        (("-c", "test:///default", "inspect", "test"), ("not a QEMU domain",)),
        (("-c", "bogus:///x", "list"), ("cannot connect to bogus:///x",)),
    ],
)
def test_bad_input_gives_one_error_line(args, fragments) -> None:
    assert_one_line_error(nitro(*args), *fragments)


def test_tcg_guest_has_no_kvm_fds(tcg_guest) -> None:
    assert_one_line_error(
        nitro("-c", "qemu:///system", "inspect", "--fds", tcg_guest.name), "runs under TCG"
    )


def test_inactive_domain(inactive_domain) -> None:
    done = nitro("-c", "qemu:///system", "inspect", inactive_domain.name())
    assert_one_line_error(done, "is not running")


def test_not_root(kvm_guest) -> None:
    done = nitro("-c", "qemu:///system", "inspect", kvm_guest.name, user="nobody")
    assert_one_line_error(done, "needs root")
