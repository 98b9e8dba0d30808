"""Whole-model conversion (issue #11) side by side, as whole processes: ``bnconvert convert
--whole`` to ``.pt`` and to ``.safetensors`` against ``import torch`` alone, the floor
(``whole_floor.py``: tensor views of the memory map + one ``torch.save``) and the protobuf
baseline (``whole_baseline.py``). Same method as ``run.py`` (interleaved rounds after a warm-up,
medians, peak RSS from GNU time); prints the table and the ratios against issue #11's targets.

Usage::

    python benchmarks/make_models.py vgg16 resnet152   # once
    python benchmarks/whole.py [--models vgg16 resnet152] [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from subprocess import DEVNULL

from run import HERE, MIB, Sample, measure

TOOLS = ("import_torch", "floor", "baseline", "whole_pt", "whole_safetensors")


def commands(model: Path, prototxt: Path, out: str) -> dict[str, list[str]]:
    script = Path(sys.executable).parent / "bnconvert"
    cli = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from bnconvert.cli import main; sys.exit(main())"]
    whole = [*cli, "convert", str(prototxt), str(model), "--whole", "-q", "-o"]
    return {
        "import_torch": [sys.executable, "-c", "import torch"],
        "floor": [sys.executable, str(HERE / "whole_floor.py"), str(model), f"{out}/floor.pt"],
        "baseline": [sys.executable, str(HERE / "whole_baseline.py"), str(model),
                     f"{out}/baseline.pt"],
        "whole_pt": [*whole, f"{out}/whole.pt"],
        "whole_safetensors": [*whole, f"{out}/whole.safetensors"],
    }


def run(models: list[str], runs: int) -> dict[str, dict[str, Sample]]:
    results = {m: {t: Sample() for t in TOOLS} for m in models}
    subprocess.run([sys.executable, str(HERE / "make_models.py"), *models], check=True,
                   stdout=DEVNULL)
    listing = subprocess.run([sys.executable, str(HERE / "make_models.py"), "--list", *models],
                             check=True, capture_output=True, text=True).stdout
    paths = {k: (Path(p), Path(m)) for k, p, m in (x.split() for x in listing.splitlines())}
    with tempfile.TemporaryDirectory(prefix="bnconvert-whole-") as out:
        plan = [(key, tool, cmd) for key in models
                for tool, cmd in commands(paths[key][1], paths[key][0], out).items()]
        for round_index in range(runs + 1):  # round 0 warms the page cache
            shift = round_index % len(plan)
            for key, tool, command in plan[shift:] + plan[:shift]:
                wall, rss, code, err = measure(command, out)
                sample = results[key][tool]
                if code and err.strip():
                    sample.stderr = err.strip().splitlines()[-1]
                if round_index:
                    sample.wall.append(wall)
                    sample.rss.append(rss)
                    sample.exit_codes.add(code)
            print(f"round {round_index}/{runs} done", file=sys.stderr)
    return results


def report(results: dict[str, dict[str, Sample]]) -> list[str]:
    lines = [f"{'model':<10} {'command':<18} {'wall s':>7} {'peak RSS MiB':>13} {'exit':>5}"]
    for key, tools in results.items():
        for tool, s in tools.items():
            lines.append(f"{key:<10} {tool:<18} {s.wall_median:7.3f} {s.rss_median / MIB:13.1f}"
                         f" {','.join(map(str, sorted(s.exit_codes))):>5}"
                         + (f"  {s.stderr}" if s.exit_codes != {0} else ""))
    lines += ["", "targets (issue #11):"]
    for key, tools in results.items():
        floor, base, torch_only = tools["floor"], tools["baseline"], tools["import_torch"]
        for tool in ("whole_pt", "whole_safetensors"):
            s = tools[tool]
            wall_floor = s.wall_median / floor.wall_median
            wall_base = s.wall_median / base.wall_median
            ref = floor if tool == "whole_pt" else torch_only
            extra = (s.rss_median - ref.rss_median) / MIB
            lines.append(f"  {key} {tool}: wall/floor {wall_floor:.3f} (<= 1.1) "
                         f"{'PASS' if wall_floor <= 1.1 else 'FAIL'}; wall/baseline "
                         f"{wall_base:.3f} (<= 0.6) {'PASS' if wall_base <= 0.6 else 'FAIL'}; "
                         f"RSS - {'floor' if tool == 'whole_pt' else 'import torch'} "
                         f"{extra:+.1f} MiB (<= +64) {'PASS' if extra <= 64 else 'FAIL'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet152"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = run(args.models, args.runs)
    print("\n".join(report(results)))
    if args.json:
        args.json.write_text(json.dumps({k: {t: {"wall": s.wall, "rss": s.rss}
                                             for t, s in v.items()}
                                         for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
