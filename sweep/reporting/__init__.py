"""A sweep's results and what is read from them: the parquet results store, tables per question
with n and intervals, paired tests with Holm families, figures, the report, planned vs used GPU
hours. Reads storage only: no Ray, no torch."""
