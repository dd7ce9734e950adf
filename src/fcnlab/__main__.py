"""``python -m fcnlab`` (also what ``torchrun -m fcnlab`` runs)."""

import sys

from fcnlab.cli import main

sys.exit(main())
