"""`python -m trainers.data`: the data command (trainers/data/command.py)."""

import sys

from trainers.data.command import main

sys.exit(main())
