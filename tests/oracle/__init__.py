"""strace's own test suite as the conformance oracle of libvirt-nitro's output (README.md there)."""
