"""Ablation (GRID.md 4.2, Fig. 6, Table 6): RQ2's mixes with ShareGPT minus code and math.

    python -m sweep.ablation [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("ablation")
