"""Tests that run inside the emulated test bed, against the patched KVM (kernel/testbed)."""
