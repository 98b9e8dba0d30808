"""Time whole processes: ``bnconvert inspect``, ``bnconvert convert`` (BN only, to ``.pt``), the
floor ``python -c "import torch"`` and the common-approach ``baseline.py``, on the synthetic
models of ``make_models.py``; print a table and the ratios against issue #5's targets.

Each process is measured on its own: wall seconds with ``time.perf_counter`` around
``Popen``..``os.wait4``, and peak RSS as GNU ``/usr/bin/time`` reports it ("Maximum resident
set size", ``%M``; ``apt-get install time`` if it is missing, see ``measure``). Runs are
interleaved (every command of every model once per round, the order rotated each round) after
one untimed warm-up round, and the median of the rounds is reported. Files are read from the page
cache (the warm-up reads them); this is the "second run" a user sees.

Usage::

    python benchmarks/make_models.py      # once, ~10 s, ~1.5 GB in ~/.cache/bnconvert-bench
    python benchmarks/run.py              # 5 rounds, all models (~3 min)
    python benchmarks/run.py --runs 9 --models resnet152 --json results.json
    PYTHONPATH=/path/to/other/checkout python benchmarks/run.py   # benchmark another tree
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import DEVNULL, PIPE, Popen

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
MODELS = ("resnet50", "resnet152", "vgg16", "vgg16_v1")  # as in make_models.MODELS
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
TOOLS = ("floor", "inspect", "convert", "baseline")


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # bytes
    exit_codes: set[int] = field(default_factory=set)
    stderr: str = ""

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    @property
    def rss_median(self) -> float:
        return statistics.median(self.rss)


def measure(command: list[str], cwd: str) -> tuple[float, int, int, str]:
    """Run ``command``; return ``(wall seconds, peak RSS bytes, exit code, stderr)``.

    Peak RSS comes from ``/usr/bin/time`` (GNU time's ``%M``) when it exists: a child's
    ``ru_maxrss`` also counts the RSS of the process that forked it (Linux carries the old
    memory map's high-water mark across ``fork``/``exec``), and GNU time is a small C process.
    Without it, ``wait4``'s ``ru_maxrss`` is used and includes this script's own RSS (~10 MiB;
    it imports nothing but the standard library for that reason).
    """
    with tempfile.NamedTemporaryFile("r", prefix="bench-time-", suffix=".txt") as stats:
        prefix = [GNU_TIME, "-f", "%M", "-o", stats.name] if GNU_TIME else []
        start = time.perf_counter()
        process = Popen([*prefix, *command], cwd=cwd, stdout=DEVNULL, stderr=PIPE)
        assert process.stderr is not None
        err = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stderr.close()
        rss_kib = int(stats.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return wall, rss_kib * 1024, process.returncode, err.decode(errors="replace")


def commands(model: Path, prototxt: Path | None, out_dir: str) -> dict[str, list[str]]:
    # The console script next to this interpreter, not a launcher shim found on PATH (pyenv's
    # shims add ~60 ms of bash before Python starts, which the floor would not pay).
    script = Path(sys.executable).parent / "bnconvert"
    cli = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from bnconvert.cli import main; sys.exit(main())"]
    files = [str(prototxt), str(model)] if prototxt else [str(model)]
    baseline = str(HERE / "baseline.py")
    return {
        "floor": [sys.executable, "-c", "import torch"],
        "inspect": [*cli, "inspect", *files],
        "convert": [*cli, "convert", *files, "-o", f"{out_dir}/bn.pt", "-q"],
        "baseline": [sys.executable, baseline, str(model), f"{out_dir}/baseline.pt"],
    }


def run(models: list[str], runs: int, with_prototxt: bool) -> dict[str, dict[str, Sample]]:
    results: dict[str, dict[str, Sample]] = {m: {t: Sample() for t in TOOLS} for m in models}
    with tempfile.TemporaryDirectory(prefix="bnconvert-bench-") as out_dir:
        plan: list[tuple[str, str, list[str]]] = []
        # Generate (or find) the models in a child process: this one stays small (see measure).
        subprocess.run([sys.executable, str(HERE / "make_models.py"), *models], check=True,
                       stdout=DEVNULL)
        listing = subprocess.run([sys.executable, str(HERE / "make_models.py"), "--list",
                                  *models], check=True, capture_output=True, text=True).stdout
        paths = {k: (Path(p), Path(m)) for k, p, m in (x.split() for x in listing.splitlines())}
        for key in models:
            prototxt, caffemodel = paths[key]
            with open(caffemodel, "rb") as handle:  # into the page cache
                while handle.read(64 * MIB):
                    pass
            cmds = commands(caffemodel, prototxt if with_prototxt else None, out_dir)
            plan.extend((key, tool, cmds[tool]) for tool in TOOLS)
        for round_index in range(runs + 1):  # round 0 is the warm-up
            shift = round_index % len(plan)
            for key, tool, command in plan[shift:] + plan[:shift]:
                wall, rss, code, err = measure(command, out_dir)
                sample = results[key][tool]
                if round_index == 0:
                    sample.stderr = err.strip().splitlines()[-1] if err.strip() else ""
                    continue
                sample.wall.append(wall)
                sample.rss.append(rss)
                sample.exit_codes.add(code)
                if code and err.strip():
                    sample.stderr = err.strip().splitlines()[-1]
            print(f"round {round_index}/{runs} done", file=sys.stderr)
    return results


def _check(ok: bool, binding: bool = True) -> str:
    if not binding:
        return "info (not a target for this model)"
    return "PASS" if ok else "FAIL"


# Which targets bind which model (issue #5): memory on every model; speed and the baseline
# comparison on ResNet-152; inspect on ResNet-152 and VGG-16.
_BINDING = {"wall": {"resnet152"}, "rss": None, "above": {"resnet152"},
            "mem_ratio": {"resnet152"}, "inspect": {"resnet152", "vgg16"}}


def _binds(target: str, model: str) -> bool:
    models = _BINDING[target]
    return models is None or model in models


def targets(model: str, tools: dict[str, Sample]) -> list[str]:
    """Issue #5's targets for one model, from the medians (non-binding ones marked info)."""
    floor, conv, base, insp = tools["floor"], tools["convert"], tools["baseline"], tools["inspect"]
    wall_ratio = conv.wall_median / floor.wall_median
    extra_rss = (conv.rss_median - floor.rss_median) / MIB
    above = conv.wall_median - floor.wall_median
    base_above = base.wall_median - floor.wall_median
    above_ratio = above / base_above if base_above > 0 else float("nan")
    mem_ratio = base.rss_median / conv.rss_median
    binds = {name: _binds(name, model) for name in _BINDING}
    return [
        f"    convert wall / floor        = {wall_ratio:6.3f}       (<= 1.15)  "
        f"{_check(wall_ratio <= 1.15, binds['wall'])}",
        f"    convert RSS - floor RSS     = {extra_rss:+6.1f} MiB   (<= +64)   "
        f"{_check(extra_rss <= 64, binds['rss'])}",
        f"    above floor: convert {above:+.3f} s, baseline {base_above:+.3f} s: ratio "
        f"{above_ratio:5.2f} (<= 0.67)  {_check(above <= 2 / 3 * base_above, binds['above'])}",
        f"    baseline RSS / convert RSS  = {mem_ratio:6.2f}       (>= 2.5)   "
        f"{_check(mem_ratio >= 2.5, binds['mem_ratio'])}",
        f"    inspect wall                = {insp.wall_median:6.3f} s     (<= 0.15)  "
        f"{_check(insp.wall_median <= 0.15, binds['inspect'])}",
        f"    inspect peak RSS            = {insp.rss_median / MIB:6.1f} MiB   (<= 64)    "
        f"{_check(insp.rss_median <= 64 * MIB, binds['inspect'])}",
    ]


def report(results: dict[str, dict[str, Sample]]) -> list[str]:
    """The table of medians, then the targets per model."""
    lines = [f"{'model':<10} {'command':<9} {'wall s':>7} {'(min-max)':>13} {'peak RSS MiB':>13}"
             f" {'exit':>5}"]
    for key, tools in results.items():
        for tool, s in tools.items():
            lines.append(f"{key:<10} {tool:<9} {s.wall_median:7.3f} "
                         f"({min(s.wall):.2f}-{max(s.wall):.2f}) {s.rss_median / MIB:13.1f} "
                         f"{','.join(map(str, sorted(s.exit_codes))):>5}")
    lines += ["", "targets (issue #5; binding on resnet152, memory on all, inspect on resnet152 "
              "and vgg16):"]
    for key, tools in results.items():
        conv = tools["convert"]
        note = "" if conv.exit_codes == {0} else f"  (convert exit {sorted(conv.exit_codes)}: " \
            f"{conv.stderr})"
        lines.append(f"  {key}:{note}")
        lines += targets(key, tools)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL",
                        help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--with-prototxt", action="store_true",
                        help="pass the deploy prototxt to bnconvert as well")
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    results = run(args.models, args.runs, args.with_prototxt)
    print("\n".join(report(results)))
    if args.json:
        args.json.write_text(json.dumps(
            {k: {t: {"wall": s.wall, "rss": s.rss, "exit": sorted(s.exit_codes)}
                 for t, s in v.items()} for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
