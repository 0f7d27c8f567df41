"""Fleet scale: events streamed through NATS JetStream.

- :mod:`.subjects`: subject and stream names (``PREFIX.<host>.<domain-uuid>.<syscall>``);
- :mod:`.target`: the ``nats://HOST:PORT[,HOST:PORT...]/PREFIX`` URL and its credentials;
- :mod:`.spool`: the bounded on-disk spool that holds events while the broker is away;
- :mod:`.sink`: :class:`~.sink.NatsSink`, the publisher thread fed by the tracer;
- :mod:`.consumer`: ``libvirt-nitro events``, the fleet-wide reader;
- :mod:`.text`: strace's lines from published records;
- :mod:`.connect`: one way to connect and to find or create the stream, errors as one line;
- :mod:`.verbs`: ``trace``'s sink options and the ``events`` verb of the command line;
- :mod:`.localserver`: a private password-protected ``nats-server`` on loopback (tests,
  bench, trying it out on one host).

Only :mod:`.connect`, :mod:`.sink` and :mod:`.consumer` use ``nats`` (nats-py), and only
when used: the rest of libvirt-nitro imports without it.
"""
