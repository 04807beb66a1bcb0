"""Checks of the training core on one GPU, within 5 minutes, without Ray: (a) bf16 autocast over
fp32 masters against fp32, (b) packed against padded batches per attention kernel, (c) train-step
tokens/s and MFU against a measured bf16 matmul peak, (d) batched greedy generation against batch
1, (e) DeepSpeed ZeRO-3 and vLLM where installed. Each part runs in its own process under its own
timeout and writes OUT/<part>.json as it ends; OUT/summary.json gathers them (sweep/planning/plan.py reads
its MFU: `--mfu-from OUT/summary.json`). On a CPU it runs tiny sizes in under a minute.
    python -m benchmarks.gpu_check --out /tmp/gpucheck          (docs/GPU_CHECK.md)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

# part -> seconds it may take on the GPU (sum 300: the whole check's budget)
TIMEOUTS = {"precision": 45, "packing": 40, "throughput": 110, "generation": 35,
            "deepspeed": 40, "vllm": 30}
BUDGET_S = 300


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def run_part(name: str, size_name: str, out: Path) -> None:
    """In the part's own process: run it and write OUT/<name>.json whatever happens."""
    import torch

    from benchmarks.gpu_check_extras import EXTRAS
    from benchmarks.gpu_check_parts import PARTS, Size

    size = Size.gpu() if size_name == "gpu" else Size.cpu()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    try:
        result = {**PARTS, **EXTRAS}[name](size)
        status = result.pop("status", "done")
    except Exception as err:  # noqa: BLE001 (recorded: the other parts still run)
        result, status = {"ok": False, "error": traceback.format_exc()[-3000:]}, \
            f"failed: {type(err).__name__}: {err}"[:300]
    write_json(out / f"{name}.json", {"part": name, "status": status, "size": size_name,
                                      "wall_s": round(time.perf_counter() - t0, 2),
                                      "ray_imported": "ray" in sys.modules, **result})


def spawn(name: str, size_name: str, out: Path, timeout: float) -> dict:
    """Run one part in a child process; record a timeout or a crash that wrote nothing."""
    path = out / f"{name}.json"
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out), "--part", name,
           "--size", size_name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=timeout, env=env)
        tail = (proc.stdout + proc.stderr)[-2000:]
        why = None if path.exists() else f"crashed: exit {proc.returncode}"
    except subprocess.TimeoutExpired as err:
        tail = ((err.stdout or b"").decode(errors="replace")
                + (err.stderr or b"").decode(errors="replace"))[-2000:]
        why = f"timeout: still running after {timeout:.0f} s"
    if why:
        write_json(path, {"part": name, "status": why, "ok": False, "size": size_name,
                          "wall_s": round(time.perf_counter() - t0, 2), "output_tail": tail})
    return json.loads(path.read_text())


def device_facts() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "torch": torch.__version__, "python": sys.version.split()[0]}


def summarize(results: dict, facts: dict, wall: float, size_name: str) -> dict:
    """The figures that matter: each part's status and verdict, and the MFU to plan with (the
    ~1.1B model's on a GPU, the largest measured; none from a CPU run)."""
    mfu, source, peak = None, None, None
    tp = results.get("throughput", {})
    if facts["cuda"]:
        for model in ("llama_1b", "smollm2_135m"):
            best = (tp.get(model) or {}).get("largest_fitting")
            if best:
                mfu, source = best["mfu"], f"throughput/{model}/micro_batch {best['micro_batch']}"
                break
        peak = (tp.get("peak") or {}).get("flops")
    return {**facts, "size": size_name, "wall_s": round(wall, 1), "mfu": mfu, "mfu_source": source,
            "peak_flops_measured": peak,
            "mfu_note": "6 x params x tokens/s over the bf16 matmul peak measured in this run"
                        if facts["cuda"] else "no MFU from a CPU run (the plan needs a GPU's)",
            "parts": {n: {"status": r.get("status"), "ok": r.get("ok"), "wall_s": r.get("wall_s")}
                      for n, r in results.items()}}


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--parts", default=",".join(TIMEOUTS), help="comma-separated subset")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # a child process runs this one part
    parser.add_argument("--size", choices=("gpu", "cpu"), help="default: gpu if CUDA is present")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    facts = device_facts()
    size_name = args.size or ("gpu" if facts["cuda"] else "cpu")
    if args.part:
        run_part(args.part, size_name, out)
        return None
    t0, results = time.perf_counter(), {}
    for name in args.parts.split(","):
        left = BUDGET_S - (time.perf_counter() - t0)
        results[name] = spawn(name, size_name, out, max(1.0, min(TIMEOUTS[name], left)))
        print(f"{name:11s} {results[name]['status']:40.40s} ok={results[name].get('ok')} "
              f"{results[name]['wall_s']:6.1f} s", flush=True)
    summary = summarize(results, facts, time.perf_counter() - t0, size_name)
    write_json(out / "summary.json", summary)
    print(f"device {summary['device']} ({size_name} sizes), {summary['wall_s']} s; "
          f"mfu {summary['mfu']} ({summary['mfu_source'] or summary['mfu_note']}); "
          f"wrote {out}/summary.json")
    return summary


if __name__ == "__main__":
    main()
