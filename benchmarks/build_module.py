"""Issue #12 speed: building the whole-net module, and its forward against a hand-written net.

    python benchmarks/build_module.py [--rounds 5] [--batches 1 8]

1. Build time of ResNet-152 (tests/data/corpus, KaimingHe deploy) above ``import torch``: a
   fresh process that only imports torch, against one that imports torch, then bnconvert,
   reads the prototxt and builds the module (a) on the meta device, as ``load_model`` does
   when a caffemodel's weights will be loaded, and (b) with PyTorch's random initialisation (no
   caffemodel). Medians of ``--rounds`` processes.
2. Forward time (CPU, 224 x 224, no grad) of the built ResNet-50 against the same architecture
   written by hand below (torchvision is not installed here), interleaved rounds, medians; and
   the same forwards on the meta device (no arithmetic), which isolates per-layer overhead.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
RESNET = "KaimingHe__deep-residual-networks__prototxt__ResNet-{}-deploy.prototxt"

_BUILD = """
import time, torch
t = time.perf_counter()
from bnconvert.build.network import build_net
from bnconvert.read.net import load_net
net = load_net({path!r}, None)
{context}
    built = build_net(net)
print(time.perf_counter() - t)
"""


def _process_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def build_times(rounds: int) -> dict[str, float]:
    """Medians: process with import torch only; builds (in-process seconds after torch)."""
    path = str(CORPUS / RESNET.format(152))
    meta = _BUILD.format(path=path, context='with torch.device("meta"):')
    init = _BUILD.format(path=path, context="if True:")
    floor, with_meta, with_init, inproc_meta, inproc_init = [], [], [], [], []
    for _ in range(rounds):
        floor.append(_process_seconds("import torch"))
        with_meta.append(_process_seconds(meta))
        with_init.append(_process_seconds(init))
        out = subprocess.run([sys.executable, "-c", meta], check=True, cwd=ROOT,
                             capture_output=True, text=True)
        inproc_meta.append(float(out.stdout))
        out = subprocess.run([sys.executable, "-c", init], check=True, cwd=ROOT,
                             capture_output=True, text=True)
        inproc_init.append(float(out.stdout))
    med = statistics.median
    return {"import torch (process)": med(floor), "build meta (process)": med(with_meta),
            "build init (process)": med(with_init),
            "build meta above torch (in process)": med(inproc_meta),
            "build init above torch (in process)": med(inproc_init)}


class Bottleneck(nn.Module):
    """Caffe ResNet's bottleneck: stride on the first 1x1, BN+Scale as one BatchNorm."""

    def __init__(self, cin: int, mid: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, mid * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid * 4)
        self.relu = nn.ReLU()
        self.project = nn.Sequential(nn.Conv2d(cin, mid * 4, 1, stride, bias=False),
                                     nn.BatchNorm2d(mid * 4)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.project is None else self.project(x)
        return self.relu(y + shortcut)


class HandResNet50(nn.Module):
    """ResNet-50 as KaimingHe's deploy prototxt defines it, written by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, ceil_mode=True))
        layers, cin = [], 64
        for mid, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                layers.append(Bottleneck(cin, mid, stride if i == 0 else 1, i == 0))
                cin = mid * 4
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(7, 1)
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return torch.softmax(self.fc(x.flatten(1)), dim=1)


def forward_times(rounds: int, batches: list[int]) -> dict[str, float]:
    """Medians of interleaved forwards: built vs hand-written ResNet-50."""
    from bnconvert.build import load_model

    built = load_model(CORPUS / RESNET.format(50)).eval()
    hand = HandResNet50().eval()
    out: dict[str, float] = {}
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224)
        times: dict[str, list[float]] = {"built": [], "hand": []}
        with torch.inference_mode():
            for module in (built, hand):
                module(x)  # warm-up
            for _ in range(rounds):
                for name, module in (("built", built), ("hand", hand)):
                    start = time.perf_counter()
                    module(x)
                    times[name].append(time.perf_counter() - start)
        for name, values in times.items():
            out[f"ResNet-50 {name} batch {batch}"] = statistics.median(values)
        out[f"ratio batch {batch}"] = out[f"ResNet-50 built batch {batch}"] / \
            out[f"ResNet-50 hand batch {batch}"]
    return out


def dispatch_overhead(rounds: int) -> dict[str, float]:
    """Medians of forwards on the meta device (no arithmetic: Python and dispatch only), batch 8:
    the per-layer overhead of the built module against the hand-written one."""
    from bnconvert.build import load_model

    built = load_model(CORPUS / RESNET.format(50)).eval().to("meta")
    hand = HandResNet50().eval().to("meta")
    x = torch.empty(8, 3, 224, 224, device="meta")
    times: dict[str, list[float]] = {"built": [], "hand": []}
    with torch.inference_mode():
        for _ in range(rounds * 20):
            for name, module in (("built", built), ("hand", hand)):
                start = time.perf_counter()
                module(x)
                times[name].append(time.perf_counter() - start)
    out = {f"meta-device forward {k} (ms)": 1e3 * statistics.median(v) for k, v in times.items()}
    out["meta ratio"] = out["meta-device forward built (ms)"] / out["meta-device forward hand (ms)"]
    return out


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    results = {} if args.skip_build else build_times(args.rounds)
    results.update(dispatch_overhead(args.rounds))
    results.update(forward_times(args.rounds, args.batches))
    for name, value in results.items():
        print(f"{name:45s} {value:8.3f}")


if __name__ == "__main__":
    main()
