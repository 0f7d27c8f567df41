"""``python -m libvirt_nitro``: the command line."""

import sys

from .cli import main

sys.exit(main())
