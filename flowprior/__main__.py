"""``python -m flowprior`` runs the command line."""

import sys

from flowprior.cli import main

sys.exit(main())
