"""What to run: the study's commands (`python -m sweep.rq1` ... `sweep.all`, `sweep.report`,
`sweep.finetune`, `sweep.decontaminate`) on four layers, each importing only those below it:
study (what the paper asks: strategies, grids, presets, its numbers) < planning (ids, sharing,
cost, content) < reporting (the results store, tables, tests, figures) < execution (Ray Tune
trials, Ray Train stages, evaluation, the console). docs/ARCHITECTURE.md argues the split.
"""
