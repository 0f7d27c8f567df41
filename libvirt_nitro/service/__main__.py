"""``python -m libvirt_nitro.service``: the service verbs (until the main CLI has them)."""

import sys

from .verbs import main

sys.exit(main())
