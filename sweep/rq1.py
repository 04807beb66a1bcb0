"""Research question 1 (GRID.md, Fig. 2): each source alone at each fraction f.

    python -m sweep.rq1 [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("rq1")
