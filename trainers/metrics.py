"""Training speed metrics: step timing, real tokens/s, and model FLOPs utilisation on GPUs.

MFU = 6 x params x tokens/s / (devices x peak dense bf16 FLOP/s), the PaLM convention (no
attention term). The peaks are the vendors' dense (not sparse) bf16 tensor-core figures. On CPUs
(and unknown GPUs) there is no meaningful peak to divide by, so no `mfu` is reported at all:
a metric is a number or absent, never a string (loggers such as MLflow take numbers only).
"""

from __future__ import annotations

import time

import torch

# Dense bf16 peak FLOP/s per device, matched against torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
}


def device_peak_flops(device_name: str) -> float | None:
    """Peak bf16 FLOP/s for a device name; the most specific table key wins, None if unknown."""
    matches = [key for key in PEAK_BF16_FLOPS if key in device_name]
    if not matches:
        return None
    return PEAK_BF16_FLOPS[max(matches, key=len)]


def mfu(params: int, tokens_per_s: float, devices: int, device) -> float | None:
    """Model FLOPs utilisation over `devices` GPUs; None on CPU or for an unknown GPU."""
    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return None
    peak = device_peak_flops(torch.cuda.get_device_name(device))
    if peak is None:
        return None
    return 6 * params * tokens_per_s / (devices * peak)


class StepMeter:
    """Wall time of one step; on GPUs it synchronises so queued kernels are counted."""

    def __init__(self):
        self._t0 = 0.0

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def start(self) -> None:
        self._sync()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        self._sync()
        return time.perf_counter() - self._t0
