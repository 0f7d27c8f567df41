"""What bench/bed_domain.py runs inside the emulated test bed."""
