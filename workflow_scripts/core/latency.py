"""Forward-pass latency of a model on fixed random input ids: median and 10th/90th percentiles.

Timing is wall clock (time.perf_counter) on CPU and CUDA events with synchronize on GPU. The model runs in eval
mode under no_grad; its training flag and the process' torch thread count are restored afterwards.
"""

import platform
import statistics
import time

import torch
from torch import nn


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fixed_input_ids(model: nn.Module, batch_size: int, seq_len: int, device) -> torch.Tensor:
    """(batch_size, seq_len) ids drawn once from a fixed seed, avoiding the first 1000 (special tokens)."""
    vocab_size = model.config.vocab_size
    low = 1000 if vocab_size > 2000 else 0
    generator = torch.Generator().manual_seed(0)
    return torch.randint(low, vocab_size, (batch_size, seq_len), generator=generator).to(device)


def _percentile(sorted_values: list[float], q: float) -> float:
    # linear interpolation between closest ranks, q in [0, 1]
    position = q * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def _time_cpu(forward, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        seconds.append(time.perf_counter() - start)
    return seconds


def _time_cuda(forward, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        forward()
        end.record()
        torch.cuda.synchronize()
        seconds.append(start.elapsed_time(end) / 1000.0)  # elapsed_time is in ms
    return seconds


def measure_latency(model: nn.Module, batch_size: int, seq_len: int, warmup: int = 3, repeats: int = 10,
                    threads: int | None = None) -> dict:
    """Latency of model(input_ids) at (batch_size, seq_len) on the model's device.

    threads: torch intra-op threads during the measurement (None = leave as is).
    Returns median_s, p10_s, p90_s, repeats, warmup, threads, batch_size, seq_len, device, torch_version,
    cpu_model (and gpu_model on CUDA).
    """
    device = next(model.parameters()).device
    input_ids = fixed_input_ids(model, batch_size, seq_len, device)  # (B, T)
    previous_threads, was_training = torch.get_num_threads(), model.training
    if threads is not None:
        torch.set_num_threads(threads)
    model.eval()
    try:
        with torch.no_grad():
            forward = lambda: model(input_ids=input_ids)  # noqa: E731
            for _ in range(warmup):
                forward()
            if device.type == "cuda":
                torch.cuda.synchronize()
                seconds = _time_cuda(forward, repeats)
            else:
                seconds = _time_cpu(forward, repeats)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    ordered = sorted(seconds)
    result = {
        "median_s": statistics.median(ordered),
        "p10_s": _percentile(ordered, 0.1),
        "p90_s": _percentile(ordered, 0.9),
        "repeats": repeats,
        "warmup": warmup,
        "threads": used_threads,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "device": str(device),
        "torch_version": torch.__version__,
        "cpu_model": cpu_model_name(),
    }
    if device.type == "cuda":
        result["gpu_model"] = torch.cuda.get_device_name(device)
    return result
