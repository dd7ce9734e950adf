"""``python -m fcnlab`` (also what ``torchrun -m fcnlab`` runs)."""

import sys

from fcnlab.cli.main import entry

sys.exit(entry())
