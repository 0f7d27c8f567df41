"""Build-time sources of the cffi extension ``libvirt_nitro.ioctl._kvm_cffi``.

One module per C header (pyca/cryptography's layout): each holds ``INCLUDES`` (the
``#include`` lines), ``TYPES`` (cdef of structs and constants), ``FUNCTIONS`` (cdef of
the C wrappers) and ``CUSTOMIZATIONS`` (their C bodies).  :mod:`.build` joins them in
the order of ``MODULES`` into one API-mode extension, so the C compiler checks every
declaration against the real header.
"""

__all__: list[str] = []
