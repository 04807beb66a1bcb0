"""Research question 3 (GRID.md, Fig. 4, Table 4): fixed general, fixed specialized, fixed 1/64 general.

    python -m sweep.rq3 [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("rq3")
