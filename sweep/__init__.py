"""What to run: specs, presets, strategies, grids, reports."""
