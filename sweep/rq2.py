"""Research question 2 (GRID.md, Fig. 3, Tables 2-3): the three sources mixed at each fraction f.

    python -m sweep.rq2 [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("rq2")
