#!/usr/bin/env python3
"""Run the test bed's QEMU and make sure it never hangs silently.

    supervise.py DEADLINE_S SILENCE_S SYSTEM_MAP -- QEMU_ARGS...

Copies the machine's console to stdout. The bed's init prints a line at least every 20 s
(its heartbeat), so a console silent for SILENCE_S seconds means the emulated machine is
frozen (both CPUs stuck, interrupts off: no kernel watchdog can speak). Then, or at
DEADLINE_S, QEMU's monitor is asked where every vCPU is (``info registers -a``), each RIP is
named from SYSTEM_MAP (the kernel boots with nokaslr), and QEMU is killed. Exit status:
QEMU's own, 124 at the deadline, 125 on a frozen machine.
"""

from __future__ import annotations

import bisect
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

FROZEN = 125
TIMED_OUT = 124


def main(argv: list[str]) -> int:
    deadline, silence, system_map = float(argv[0]), float(argv[1]), argv[2]
    qemu = argv[argv.index("--") + 1 :]
    with tempfile.TemporaryDirectory() as work:
        monitor = os.path.join(work, "monitor")
        proc = subprocess.Popen(
            [*qemu, "-monitor", f"unix:{monitor},server=on,wait=off"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        last_output = [time.monotonic()]
        relay = threading.Thread(target=_relay, args=(proc.stdout, last_output), daemon=True)
        relay.start()
        end = time.monotonic() + deadline
        while True:
            try:
                status = proc.wait(timeout=1.0)
                relay.join(10)
                return status
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= end:
                _report(f"the deadline of {deadline:.0f} s passed", monitor, system_map)
                return _kill(proc, TIMED_OUT)
            if now - last_output[0] >= silence:
                quiet = now - last_output[0]
                _report(f"no console output for {quiet:.0f} s: frozen", monitor, system_map)
                return _kill(proc, FROZEN)


def _relay(stream, last_output: list[float]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        last_output[0] = time.monotonic()


def _kill(proc: subprocess.Popen, status: int) -> int:
    proc.kill()
    proc.wait(30)
    return status


def _report(why: str, monitor: str, system_map: str) -> None:
    """Print why the machine is stopped and where each of its vCPUs is."""
    print(f"run: {why}; the vCPUs:", file=sys.stderr)
    try:
        state = _ask(monitor, "info registers -a")
    except OSError as exc:
        print(f"run: QEMU's monitor did not answer ({exc})", file=sys.stderr)
        return
    symbols = _symbols(system_map)
    for cpu, rip in enumerate(re.findall(r"RIP=([0-9a-f]{16})", state)):
        print(f"run: vCPU {cpu}: RIP={rip} {_name(symbols, int(rip, 16))}", file=sys.stderr)
    for line in state.splitlines():
        if line.startswith(("CPU#", "RAX=", "RSI=", "RIP=", "CR0=", "EFER=")):
            print(f"run:   {line.strip()}", file=sys.stderr)


def _ask(path: str, command: str) -> str:
    """One HMP *command* on the monitor socket at *path*; its reply text."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5.0)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        reply = b""
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            reply += chunk
            if reply.rstrip().endswith(b"(qemu)") and command.encode() in reply:
                break
    return reply.decode(errors="replace")


def _symbols(path: str) -> tuple[list[int], list[str]]:
    addresses, names = [], []
    try:
        with open(path) as text:
            for line in text:
                address, kind, name = line.split()[:3]
                if kind in "tTwW":
                    addresses.append(int(address, 16))
                    names.append(name)
    except (OSError, ValueError):
        pass
    order = sorted(range(len(addresses)), key=addresses.__getitem__)
    return [addresses[i] for i in order], [names[i] for i in order]


def _name(symbols: tuple[list[int], list[str]], rip: int) -> str:
    addresses, names = symbols
    if rip < 1 << 63:
        return "(user mode, or a nested guest)"
    index = bisect.bisect_right(addresses, rip) - 1
    if index < 0 or rip - addresses[index] > 1 << 20:
        return "(a module, or the nested guest's kernel)"
    return f"({names[index]}+{rip - addresses[index]:#x})"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
