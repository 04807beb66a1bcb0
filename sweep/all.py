"""Every question (rq1, rq2, rq3, rq4, ablation; t-SNE with --tsne) as one sweep: the runs of all
of them, each once, and every stage they share across questions trained once (rq1's singles at
f=1 are rq4's first stages, rq2's mix at f=1 is rq4's multi-task, ...; sweep/study/grid.py build_all).
    python -m sweep.all [--preset smoke|local|paper] [--models ...] [--tsne] [--dry-run [--json]]
(same flags as every question, see sweep/cli.py)
"""

from sweep.cli import entry

if __name__ == "__main__":
    entry("all")
