"""Representations (GRID.md 4.1, Fig. 5): t-SNE of the base model and of DMT(k=1/256).

    python -m sweep.tsne [--preset smoke|local|paper] [--dry-run [--json]]   (see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("tsne")
