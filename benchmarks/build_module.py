"""Issue #12 speed: building the whole-net module, and its forward against a hand-written net.

    python benchmarks/build_module.py [--rounds 5] [--batches 1 8]

1. Build time of ResNet-152 (tests/data/corpus, KaimingHe deploy) above ``import torch``: a
   fresh process that only imports torch, against processes that import torch, then
   bnconvert, read the prototxt and build the module (``_CASES``): as ``load_model`` does
   when a caffemodel's weights will be assigned (meta device, no random initialisation, GC
   paused), the way it was built before, ``load_model`` without a caffemodel (PyTorch's random
   initialisation), and ``load_model`` with the synthetic ResNet-152 caffemodel of
   ``make_models.py`` when it is in the cache. Medians of ``--rounds`` interleaved rounds after
   one untimed warm-up round (bytecode caches written even under PYTHONDONTWRITEBYTECODE).
2. Forward time (CPU, 224 x 224, inference mode) of the built ResNet-50 and MobileNet-v1
   against torchvision's resnet50 (imported through ``tests/torchvision_shim.py``, as #11's tests
   do), a hand-written ResNet-50 with Caffe's architecture and a hand-written MobileNet-v1
   (``hand_nets.py``), interleaved rounds, medians; and the same forwards on the meta device
   (no arithmetic), which isolates per-layer Python and dispatch overhead.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hand_nets import HandMobileNetV1, HandResNet50, torchvision_resnet50
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
RESNET = "KaimingHe__deep-residual-networks__prototxt__ResNet-{}-deploy.prototxt"
MOBILENET = "shicai__MobileNet-Caffe__mobilenet_deploy.prototxt"

#: What each timed process does after ``import torch`` (it prints the seconds that took).
_CASES = {
    "build for weights (load_model's path with a caffemodel, without reading it)": """
from bnconvert.build.network import build_net
from bnconvert.build.weights_first import paused_gc
from bnconvert.read.net import load_net
with paused_gc():
    built = build_net(load_net(PROTOTXT, None), on_meta=True)""",
    "build on meta as before (meta context, GC running)": """
from bnconvert.build.network import build_net
from bnconvert.read.net import load_net
net = load_net(PROTOTXT, None)
with torch.device("meta"):
    built = build_net(net)""",
    "load_model(prototxt): PyTorch's random init": """
from bnconvert.build import load_model
built = load_model(PROTOTXT)""",
    "load_model(prototxt, caffemodel) (bench cache)": """
from bnconvert.build import load_model
built = load_model(DEPLOY, CAFFEMODEL)""",
}
_TEMPLATE = """
import time, torch
PROTOTXT, DEPLOY, CAFFEMODEL = {paths!r}
t, c = time.perf_counter(), time.process_time()
{body}
print(time.perf_counter() - t, time.process_time() - c)
"""
_BENCH = Path.home() / ".cache" / "bnconvert-bench" / "resnet152"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(code: str) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of a fresh interpreter running ``code``, and what
    it printed. CPU time is what a loaded, shared machine distorts least."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cpu, start = _children_cpu(), time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env,
                         capture_output=True, text=True)
    return time.perf_counter() - start, _children_cpu() - cpu, out.stdout


def build_times(rounds: int, only: str | None = None) -> dict[str, float]:
    """Medians of fresh processes (one untimed warm-up round writes the bytecode caches):
    (``only``: the cases whose name contains it)
    ``import torch`` alone, and each case above it (process wall and CPU time minus the
    floor's) and after the import (in-process wall and CPU time)."""
    paths = (str(CORPUS / RESNET.format(152)), str(_BENCH / "deploy.prototxt"),
             str(_BENCH / "model.caffemodel"))
    cases = {name: _TEMPLATE.format(paths=paths, body=body) for name, body in _CASES.items()
             if ("CAFFEMODEL" not in body or Path(paths[2]).is_file())
             and (only is None or only in name)}
    samples: dict[str, list[tuple[float, ...]]] = {"import torch": [],
                                                   **{name: [] for name in cases}}
    for round_index in range(rounds + 1):
        for name, code in {"import torch": "import torch\nprint(0, 0)", **cases}.items():
            wall, cpu, printed = _run(code)
            if round_index:
                samples[name].append((wall, cpu, *map(float, printed.split())))
    med = statistics.median
    floor = [med(s[i] for s in samples["import torch"]) for i in range(2)]
    out = {"import torch, process: wall s": floor[0], "import torch, process: CPU s": floor[1]}
    for name in cases:
        columns = [med(s[i] for s in samples[name]) for i in range(4)]
        out[f"{name}: above the floor, process: wall s"] = columns[0] - floor[0]
        out[f"{name}: above the floor, process: CPU s"] = columns[1] - floor[1]
        out[f"{name}: after import torch, in process: wall s"] = columns[2]
        out[f"{name}: after import torch, in process: CPU s"] = columns[3]
    return out


def _forward_medians(models: dict[str, nn.Module], x: torch.Tensor,
                     rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU (``time.process_time``: every thread of this process) seconds of
    one forward of each model, the models interleaved in every round and their order rotated
    from round to round."""
    names = list(models)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    with torch.inference_mode():
        for name in names:
            models[name](x)  # warm-up
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                start, cpu = time.perf_counter(), time.process_time()
                models[name](x)
                times[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in values),
                   statistics.median(c for _, c in values)) for name, values in times.items()}


def forward_models() -> tuple[dict[str, nn.Module], list[str]]:
    """The built nets and their hand-written counterparts (eval mode), and notes."""
    from bnconvert.build import load_model

    models: dict[str, nn.Module] = {
        "ResNet-50 built": load_model(CORPUS / RESNET.format(50)),
        "ResNet-50 hand (Caffe's architecture)": HandResNet50(),
        "MobileNet-v1 built": load_model(CORPUS / MOBILENET),
        "MobileNet-v1 hand": HandMobileNetV1(),
    }
    notes = []
    vision = torchvision_resnet50()
    if isinstance(vision, str):
        notes.append(vision)
    else:
        models["ResNet-50 torchvision"] = vision
    return {name: model.eval() for name, model in models.items()}, notes


_RATIOS = (("ResNet-50 built", "ResNet-50 torchvision"),
           ("ResNet-50 built", "ResNet-50 hand (Caffe's architecture)"),
           ("MobileNet-v1 built", "MobileNet-v1 hand"))


def forward_times(rounds: int, batches: list[int]) -> dict[str, float]:
    """Medians of interleaved forwards (ms, wall and CPU) and the built/hand-written ratios."""
    models, notes = forward_models()
    for note in notes:
        print(note)
    out: dict[str, float] = {}
    for batch in batches:
        medians = _forward_medians(models, torch.randn(batch, 3, 224, 224), rounds)
        for name, (wall, cpu) in medians.items():
            out[f"{name} batch {batch}: wall ms"] = 1e3 * wall
            out[f"{name} batch {batch}: CPU ms"] = 1e3 * cpu
        for built, hand in _RATIOS:
            if hand in medians:
                for i, kind in enumerate(("wall", "CPU")):
                    out[f"ratio {built} / {hand} batch {batch}: {kind}"] = \
                        medians[built][i] / medians[hand][i]
    return out


def dispatch_overhead(rounds: int) -> dict[str, float]:
    """Medians of forwards on the meta device (no arithmetic: Python and dispatch only), batch 8:
    the per-layer overhead of the built modules against the hand-written ones."""
    models, _ = forward_models()
    meta = {name: model.to("meta") for name, model in models.items()}
    medians = _forward_medians(meta, torch.empty(8, 3, 224, 224, device="meta"), rounds * 20)
    out = {f"meta-device forward {name}: CPU ms": 1e3 * v[1] for name, v in medians.items()}
    for built, hand in _RATIOS:
        if hand in medians:
            out[f"meta ratio {built} / {hand}: CPU"] = medians[built][1] / medians[hand][1]
    return out


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-forward", action="store_true")
    parser.add_argument("--cases", help="only the build cases whose name contains this")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the forwards")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {} if args.skip_build else build_times(args.rounds, args.cases)
    if not args.skip_forward:
        results.update(dispatch_overhead(args.rounds))
        results.update(forward_times(args.rounds, args.batches))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs (shared: other work may run)")
    for name, value in results.items():
        print(f"{name:90s} {value:8.3f}")


if __name__ == "__main__":
    main()
