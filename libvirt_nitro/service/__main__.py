"""``python -m libvirt_nitro.service``: the service verbs alone (the hook script runs this, so
that it works whatever the main command line offers; ``libvirt-nitro`` has the same verbs)."""

import sys

from .verbs import main

sys.exit(main())
