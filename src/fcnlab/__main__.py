"""``python -m fcnlab`` (also what ``torchrun -m fcnlab`` runs)."""

import sys

from fcnlab.cli import entry

sys.exit(entry())
