"""Test and benchmark support: not used by the product (the tracer, its backends, the CLI).

What ``tests/`` and ``bench/`` share, importable from anywhere without ``sys.path`` edits
and without libvirt running (nothing here is imported by :mod:`libvirt_nitro` itself):

* :mod:`.kvmvm`: a tiny long-mode test VM on the real ``/dev/kvm`` (:class:`~.kvmvm.TestVm`)
  and the userspace Nitro cycle on it (:class:`~.kvmvm.NitroCycle`), which builds events with
  :func:`~.kvmvm.fill_from_kvm`;
* :mod:`.guest`: the test guest (built by ``tests/guest/build-guest``), run as a libvirt
  domain and driven through its workload's control port; also a small command line,
  ``python -m libvirt_nitro.testing.guest start|run|stop NAME``.

Each submodule needs only what it uses: :mod:`.kvmvm` the compiled cffi extension and
binutils, :mod:`.guest` lxml (and libvirt-python once a guest is started or destroyed).
"""
