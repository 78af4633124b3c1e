"""``python -m satmae`` runs the ``satmae`` command."""

import sys

from satmae.cli import main

sys.exit(main())
