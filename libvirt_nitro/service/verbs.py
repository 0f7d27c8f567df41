"""The service verbs of the command line: ``config``, ``hook``, ``install-hook``, ``serve``,
``status`` and ``watch``.

:func:`register` adds them to ``libvirt-nitro``'s sub-parsers (the main parser owns
``-c/--connect``); :func:`main` is a stand-alone entry with the same options, used by
``python -m libvirt_nitro.service`` (and by the hook script, which works whether or not the
main CLI has the verbs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cliargs import PROG, ArgumentParser, domain_uuid, run_verb
from ..errors import NitroError

__all__ = ["register", "main", "build_parser"]


def cmd_config(args: argparse.Namespace) -> int:
    """``config DOMAIN [--set FILE | --remove] [--live] [--config]``."""
    from ..domain import lookup_domain, open_connection
    from .config import affect_flags, get_element, remove_element, set_element

    conn = open_connection(args.connect)
    dom = lookup_domain(conn, args.domain)
    flags = affect_flags(args.live, args.config)
    if args.set is not None:
        text = sys.stdin.read() if args.set == "-" else Path(args.set).read_text()
        set_element(dom, text, flags)
        print(f"{PROG}: <nitro:trace> set on {dom.name()}", file=sys.stderr)
    elif args.remove:
        had = remove_element(dom, flags)
        print(
            f"{PROG}: <nitro:trace> removed from {dom.name()}"
            if had
            else f"{PROG}: {dom.name()} had no <nitro:trace>",
            file=sys.stderr,
        )
    else:
        if args.live and args.config:
            raise NitroError("show one definition at a time: --live or --config")
        text = get_element(dom, flags)
        if text is None:
            print(f"{PROG}: {dom.name()} has no <nitro:trace> element", file=sys.stderr)
            return 1
        print(text)
    return 0


def cmd_hook(args: argparse.Namespace) -> int:
    """``hook DOMAIN OPERATION SUB-OPERATION EXTRA``: libvirt's QEMU hook; always 0."""
    from .hook import main as hook_main

    return hook_main([args.domain, args.operation, *args.rest])


def cmd_install_hook(args: argparse.Namespace) -> int:
    """``install-hook [--hooks-dir DIR] [--remove] [--reload]``."""
    from .installer import install, reload_libvirtd, uninstall

    hooks_dir = Path(args.hooks_dir)
    if args.remove:
        removed = uninstall(hooks_dir)
        print(f"{PROG}: hook {'removed' if removed else 'was not installed'}", file=sys.stderr)
    else:
        path = install(hooks_dir)
        print(f"{PROG}: hook written to {path}", file=sys.stderr)
    if args.reload:
        pid = reload_libvirtd()
        print(f"{PROG}: libvirtd (pid {pid}) reloaded", file=sys.stderr)
    elif not args.remove:
        print(
            f"{PROG}: libvirtd picks new hook scripts up when it starts or reloads: "
            "pass --reload (SIGHUP) unless it already runs a qemu hook",
            file=sys.stderr,
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve UUID [--hook-pid PID]``: trace one domain as a service."""
    from .server import run

    return run(args)


def cmd_status(args: argparse.Namespace) -> int:
    """``status [--json]``: the domains the service traces."""
    from .status import format_table, read_states

    states = read_states()
    if args.json:
        print(json.dumps(states, indent=2))
    else:
        print(format_table(states))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """``watch``: the host's watcher."""
    from .watch import run

    return run(args)


def register(subparsers: Any) -> None:
    """Add the service verbs to *subparsers* (``ArgumentParser.add_subparsers()``)."""
    from .installer import HOOKS_DIR

    config = subparsers.add_parser(
        "config", help="show, set or remove a domain's <nitro:trace> metadata element"
    )
    config.add_argument("domain", metavar="DOMAIN", help="domain name, UUID or id")
    action = config.add_mutually_exclusive_group()
    action.add_argument("--set", metavar="FILE", help="set the element from FILE ('-': stdin)")
    action.add_argument("--remove", action="store_true", help="remove the element")
    config.add_argument("--live", action="store_true", help="the running domain")
    config.add_argument("--config", action="store_true", help="the persistent definition")
    config.set_defaults(func=cmd_config)

    hook = subparsers.add_parser("hook", help="libvirt QEMU hook entry (run by libvirtd)")
    hook.add_argument("domain", metavar="DOMAIN")
    hook.add_argument("operation", metavar="OPERATION")
    hook.add_argument("rest", nargs="*", metavar="ARG", help="sub-operation, extra")
    hook.set_defaults(func=cmd_hook)

    install = subparsers.add_parser("install-hook", help="write the libvirt QEMU hook script")
    install.add_argument("--hooks-dir", default=str(HOOKS_DIR), metavar="DIR")
    install.add_argument("--remove", action="store_true", help="remove the hook script")
    install.add_argument(
        "--reload", action="store_true", help="SIGHUP libvirtd so that it sees the hook"
    )
    install.set_defaults(func=cmd_install_hook)

    serve = subparsers.add_parser("serve", help="trace a domain as a service (by UUID)")
    serve.add_argument("uuid", type=domain_uuid, metavar="UUID")
    serve.add_argument("--hook-pid", type=int, metavar="PID", help="wait for PID to exit first")
    serve.add_argument(
        "--attach-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="give up if the guest is not traceable after S seconds (default 600)",
    )
    serve.set_defaults(func=cmd_serve)

    status = subparsers.add_parser("status", help="list the domains the service traces")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    watch = subparsers.add_parser(
        "watch", help="start tracing when <nitro:trace> is added to a running domain"
    )
    watch.add_argument("--hook-pid", type=int, metavar="PID", help=argparse.SUPPRESS)
    watch.set_defaults(func=cmd_watch)


def build_parser() -> argparse.ArgumentParser:
    """A parser with ``-c/--connect`` and the service verbs only."""
    parser = ArgumentParser(prog=PROG, description="libvirt-nitro service verbs")
    parser.add_argument("-c", "--connect", metavar="URI", help="libvirt URI")
    register(parser.add_subparsers(dest="verb", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one service verb; NitroErrors end as one line on stderr and status 1."""
    args = build_parser().parse_args(argv)
    return run_verb(args.func, args)
