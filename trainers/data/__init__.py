"""The data side of training: sources -> records -> selection -> recipe -> pipeline -> rows.

Where a corpus lives and how it is read (sources, corpora, builtin_sources, tagging), the one
record shape (records), exact seeded subsets (selection) and mixes (recipe), the chat template
and loss mask (template, formatting), the Ray Data pipeline that streams a stage's rows
(pipeline) and the micro-batches built from them (collate). Nothing here trains a model.
    python -m trainers.data --recipe "math=1/256,code=1/256,general=1/256"
"""
