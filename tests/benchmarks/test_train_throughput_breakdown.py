"""The throughput benchmark's breakdown: its factors are exact, so they multiply to the ratio."""

import re

from benchmarks.train_throughput import padding_gain, print_tables


def sample(length: int) -> dict:
    return {"input_ids": [1] * length, "labels": [1] * length}


def test_padding_gain_counts_positions_of_the_timed_steps_only():
    samples = [sample(n) for n in (9, 9, 4, 2, 3, 1)]  # batches of 2: (9,9) (4,2) (3,1)
    # warmup 0: step 0 untimed; steps 1-2 compute 2*4 + 2*3 positions for 6 + 4 real tokens.
    assert padding_gain(samples, batch=2, steps=3, warmup=0) == 14 / 10


def test_breakdown_factors_multiply_to_packed_over_trainer_padded(capsys):
    runs = {(False, "Trainer"): [{"tokens_per_s": 100.0, "loss": 1.0}],
            (False, "loop"): [{"tokens_per_s": 300.0, "loss": 1.0}],
            (True, "Trainer"): [{"tokens_per_s": 180.0, "loss": 1.0}],
            (True, "loop"): [{"tokens_per_s": 240.0, "loss": 1.0}]}
    print_tables(runs, gain=2.0)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("loop packed"))
    ratio, *factors = map(float, re.findall(r"\d+\.\d+", line))
    assert ratio == 2.40 and factors == [2.0, 3.0, 0.40]
