"""How decontamination scales: the shared ShareGPT sample repeated 1x, 10x, 40x (a JSON list, as
ShareGPT V3 ships), each scanned by `python -m sweep.decontaminate` in its own process; prints
wall time, peak RSS (the child's ru_maxrss) and their per-sample rates, and both as ratios to the
smallest size's (the baseline in the same command). Near-linear time (per-sample ratio ~1) and
flat memory (RSS ratio ~1) mean the source is streamed and only the hashed test n-grams are held:
    python benchmarks/decontaminate_scaling.py [--sample ../shared/data/sharegpt/...] [--times 1,10,40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "../shared/data/sharegpt/sharegpt_v3_sample1011.json"


def write_repeated(sample: list, times: int, path: Path) -> None:
    """The sample `times` over, as one JSON list written element by element."""
    with path.open("w") as f:
        f.write("[\n")
        for k in range(times):
            for i, row in enumerate(sample):
                sep = "" if k == 0 and i == 0 else ",\n"
                f.write(sep + json.dumps({**row, "id": f"{row['id']}_{k}"}))
        f.write("\n]\n")


def measure(path: Path, tests: str, tmp: Path) -> dict:
    """Wall time and this child's own peak RSS (os.wait4's rusage, not the running maximum)."""
    cmd = [sys.executable, "-m", "sweep.decontaminate", "--source", f"general={path}",
           "--tests", tests, "--json"]
    out = tmp / "out.json"
    start = time.perf_counter()
    with out.open("w") as f:
        child = subprocess.Popen(cmd, stdout=f)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"{cmd} failed ({status})")
    src = json.loads(out.read_text())["sources"]["general"]
    return {"read": src["read"], "overlapping": src["overlapping"], "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", default=str(SAMPLE))
    parser.add_argument("--times", default="1,10,40")
    parser.add_argument("--tests", default="gsm8k,humaneval,mtbench")
    args = parser.parse_args(argv)
    sample = json.loads(Path(args.sample).read_text())
    print(f"{'x':>4} {'MB':>7} {'samples':>8} {'wall s':>7} {'us/sample':>10} {'peak RSS MB':>12}"
          f" {'us/sample vs 1st':>17} {'RSS vs 1st':>11}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for times in sorted(int(t) for t in args.times.split(",")):
            path = Path(tmp) / f"sharegpt_x{times}.json"
            write_repeated(sample, times, path)
            row = measure(path, args.tests, Path(tmp))
            mb = path.stat().st_size / 2**20
            per = 1e6 * row["wall_s"] / max(row["read"], 1)
            first = first or (per, row["peak_rss_mb"])
            print(f"{times:>4} {mb:>7.1f} {row['read']:>8} {row['wall_s']:>7.2f} {per:>10.0f} "
                  f"{row['peak_rss_mb']:>12.1f} {per / first[0]:>17.2f} "
                  f"{row['peak_rss_mb'] / first[1]:>11.2f}")
            path.unlink()


if __name__ == "__main__":
    main()
