"""Forward time of bnconvert.modules' Caffe pooling/LRN against the plain torch op.

Input 1x64x112x112 float32, CPU, no_grad; each figure is the median over rounds of the mean
time per call within a round. The "fast path" rows are what caffe_pooling / caffe_lrn return
when PyTorch's op computes exactly what Caffe computes (the native module itself); the
"general" rows are CaffePool2d's explicit-padding path, used only where Caffe's rule differs.

Usage: python benchmarks/ops_overhead.py [--rounds 15] [--calls 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bnconvert.modules import CaffePool2d, LRNWithinChannel, caffe_lrn, caffe_pooling


def median_ms(first: Callable[[], object], second: Callable[[], object], rounds: int,
              calls: int) -> tuple[float, float]:
    """Median over rounds of the mean milliseconds per call; the two alternate every round
    (and which goes first alternates too) so that machine load hits both alike."""
    for _ in range(3):
        first(), second()
    samples: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            fn = (first, second)[i]
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[i].append((time.perf_counter() - start) * 1000 / calls)
    return statistics.median(samples[0]), statistics.median(samples[1])


def cases(x: torch.Tensor) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    """(label, Caffe module call, plain torch op call)."""
    max_fast = caffe_pooling(3, 2, 1)
    max_p0 = caffe_pooling(3, 2, 0)
    ave_fast = caffe_pooling(3, 1, 1, max_pool=False)
    general = CaffePool2d(3, 2, 1)
    general_ave = CaffePool2d(3, 1, 1, max_pool=False)
    pad2 = caffe_pooling(3, 3, 2)
    across = caffe_lrn(5, 1e-4, 0.75, 1.0)
    within = caffe_lrn(5, 1e-4, 0.75, 2.0, within_channel=True)
    assert isinstance(within, LRNWithinChannel) and isinstance(pad2, CaffePool2d)
    return [
        ("MAX k3 s2 p1 fast path", lambda: max_fast(x),
         lambda: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
        ("MAX k3 s2 p0 fast path", lambda: max_p0(x),
         lambda: F.max_pool2d(x, 3, 2, 0, ceil_mode=True)),
        ("AVE k3 s1 p1 fast path", lambda: ave_fast(x),
         lambda: F.avg_pool2d(x, 3, 1, 1, ceil_mode=True)),
        ("MAX k3 s2 p1 general path", lambda: general(x),
         lambda: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
        ("AVE k3 s1 p1 general path", lambda: general_ave(x),
         lambda: F.avg_pool2d(x, 3, 1, 1, ceil_mode=True)),
        ("MAX k3 s3 p2 (Caffe only) vs torch p1", lambda: pad2(x),
         lambda: F.max_pool2d(x, 3, 3, 1, ceil_mode=True)),
        ("LRN ACROSS n5 fast path", lambda: across(x),
         lambda: F.local_response_norm(x, 5, 1e-4, 0.75, 1.0)),
        ("LRN WITHIN n5 vs torch ACROSS", lambda: within(x),
         lambda: F.local_response_norm(x, 5, 1e-4, 0.75, 1.0)),
    ]


def main() -> None:
    """Print one line per case: Caffe module ms, torch op ms, ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    x = torch.randn(1, 64, 112, 112, generator=torch.Generator().manual_seed(0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {tuple(x.shape)}, "
          f"median of {args.rounds} rounds x {args.calls} calls")
    print(f"{'case':40s} {'caffe ms':>9s} {'torch ms':>9s} {'ratio':>6s}")
    with torch.no_grad():
        for label, ours, plain in cases(x):
            a, b = median_ms(ours, plain, args.rounds, args.calls)
            print(f"{label:40s} {a:9.3f} {b:9.3f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
