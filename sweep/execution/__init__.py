"""A sweep running: pending runs to Ray Tune trials (driver, tuner), one trial per run (job,
trial) training its stages through Ray Train (training) and scoring the last (evaluation), the
driver's judge, the progress table and ETA (progress, console), fan-out (concurrency) and
provenance."""
