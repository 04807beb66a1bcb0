"""Research question 4 (GRID.md, Tables 1 and 5): training strategies, and DMT(k) for each k.

    python -m sweep.rq4 [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("rq4")
