"""``python -m lapseg`` runs the command line (e.g. under ``torchrun``)."""

import sys

from lapseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
