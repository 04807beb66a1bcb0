"""From grid to decision: compositions fitted, proposed, searched, and proxies checked against
full runs (sweep.recommend, sweep.search, sweep.report --agreement)."""
