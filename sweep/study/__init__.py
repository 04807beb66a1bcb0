"""The study as data: strategies (lists of stages), the grid of each research question, the
presets (models, sources, settings, evaluation, hardware) and the paper's published numbers."""
