"""cdef of the two ``sys/mman.h`` steps of the Nitro ring's mapping (libc), in C.

The kernel's ring is mapped over memory Python already owns (``MAP_FIXED``), and let go by
replacing it with a private copy at the same address in one ``mremap``: both need raw
addresses, which Python's ``mmap`` module does not give, and ``mremap`` is variadic. Each
returns 0 or ``-errno``.
"""

from __future__ import annotations

__all__ = ["INCLUDES", "TYPES", "FUNCTIONS", "CUSTOMIZATIONS", "IOCTLS"]

# _GNU_SOURCE for mremap(); this module comes first in build.MODULES so that it precedes
# every other include.
INCLUDES = """
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
"""

IOCTLS: list[tuple[str, str, str]] = []

TYPES = ""

FUNCTIONS = """
int nitro_map_shared_fixed(uintptr_t addr, size_t length, int fd, long offset);
int nitro_replace_by_private_copy(uintptr_t addr, size_t length, size_t used);
"""

CUSTOMIZATIONS = """
static int nitro_map_shared_fixed(uintptr_t addr, size_t length, int fd, long offset)
{
    void *got = mmap((void *)addr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                     fd, offset);
    return got == MAP_FAILED ? -errno : 0;
}

static int nitro_replace_by_private_copy(uintptr_t addr, size_t length, size_t used)
{
    void *copy = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (copy == MAP_FAILED)
        return -errno;
    memcpy(copy, (void *)addr, used);
    if (mremap(copy, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr)
        == MAP_FAILED) {
        int err = errno;
        munmap(copy, length);
        return -err;
    }
    return 0;
}
"""
