"""Zero-touch tracing on libvirt hosts: the ``<nitro:trace>`` domain metadata element and the
service that follows it.

- :mod:`.metadata`: the element, its RelaxNG schema (``nitro.rng``), parsing;
- :mod:`.config`: show/set/remove it through libvirt's metadata API;
- :mod:`.hook`: the libvirt QEMU hook (spawns a server on ``started``);
- :mod:`.installer`: writes the hook script;
- :mod:`.serve`: the server tracing one domain (rotation, reconnection, stop on events);
- :mod:`.watch`: the host's watcher (element added to a running domain);
- :mod:`.status`: runtime files and ``status``;
- :mod:`.cli`: the verbs, for ``libvirt_nitro.cli`` (:func:`~.cli.register`).
"""

from __future__ import annotations

__all__ = ["NAMESPACE"]

from .metadata import NAMESPACE
