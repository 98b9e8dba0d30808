"""Generate README's "Tested on" section from the corpus's LIST.json, a real inspect run and a
real build-and-run of each net.

Family, repository, path and commit come from ``tests/data/corpus/LIST.json``; the flavour and
what bnconvert does with each file come from ``inspect_net`` on the original file, and the
"Builds and runs" column from ``bnconvert.build.trial.trial_run`` (built without weights and run
on a random input of its declared shape, batch 1) on LIST.json's adapted file where there is
one, so the table says what the code does today. ``tests/test_corpus.py`` checks that README.md
holds this output (with the builds ``tests/test_build_corpus.py`` made, not made twice).

Usage::

    python scripts/tested_on_table.py            # print the section
    python scripts/tested_on_table.py --write    # replace the section in README.md
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bnconvert.inspect import InspectReport, inspect_net
from bnconvert.read.net import load_net

if TYPE_CHECKING:
    from bnconvert.build.trial import TrialRun

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
HEADING = "## Tested on"

#: LIST.json ``family`` values that are wrong, with the right one (checked by reading the file).
FAMILY_FIXES = {
    "hujie-frank/SENet": "SENet",  # LIST.json says "ENet segmentation" ("ENet" in "SENet")
    "NVIDIA/caffe:examples/TensorRT/deploy_trt.prototxt": "ResNet",  # "?"; net "Resnet50-fp16"
}
#: Median seconds to parse the 70 files in one process, measured with
#: ``python benchmarks/parse_corpus.py`` (2-core x86-64 build machine, Python 3.11); re-measure
#: and update when the reader changes.
PARSE_SECONDS = 0.50
_FUSED = ("nvcaffe", "nvcaffe-digits", "intel", "segnet", "yjxiong", "bn-unknown")


def family(entry: dict) -> str:
    """LIST.json's family, corrected where ``FAMILY_FIXES`` says so."""
    return FAMILY_FIXES.get(f"{entry['repo']}:{entry['path']}",
                            FAMILY_FIXES.get(entry["repo"], entry["family"]))


def _standalone_counts(report: InspectReport) -> tuple[int, int]:
    gating = sum(r.reason.startswith("2 bottoms") for r in report.standalone_affine)
    return gating, len(report.standalone_affine) - gating


def what_it_does(report: InspectReport) -> str:
    """One cell: what ``convert`` does with the file's BN layers, and what it leaves alone."""
    chains = report.chains
    parts = []
    folded = sum(c.scale is not None for c in chains)
    fused = sum(c.flavour_id in _FUSED for c in chains)
    plain = len(chains) - folded - fused
    if folded:
        parts.append(f"{folded} BatchNorm+Scale folded")
    if fused:
        parts.append(f"{fused} converted with the layer's own scale/shift")
    if plain:
        parts.append(f"{plain} converted non-affine")
    batch_stats = sum(not c.use_global_stats for c in chains)
    if batch_stats:
        parts.append(f"{batch_stats} use batch statistics in TEST: warned (`--strict` fails)")
    gating, other = _standalone_counts(report)
    if gating:
        parts.append(f"{gating} two-bottom Scale (SE gating) left alone")
    if other:
        parts.append(f"{other} Scale not after a BatchNorm left alone")
    kinds: dict[str, int] = {}
    for row in report.not_converted:
        kinds[row.type] = kinds.get(row.type, 0) + 1
    parts.extend(f"{n} {kind} not folded (reported)" for kind, n in kinds.items())
    problems = sum(not c.convertible for c in chains)
    if problems:
        parts.append(f"{problems} cannot be converted (reported)")
    return "; ".join(parts)


def built_file(entry: dict) -> str:
    """The corpus file a net is built from: the adapted one (an ``Input`` with a declared shape
    instead of data layers) where there is one."""
    return entry["adapted_file"] or entry["local_file"]


def trial(name: str) -> TrialRun:
    """Build and run one corpus file (imports torch)."""
    from bnconvert.build.trial import trial_run

    return trial_run(load_net(CORPUS / name, None))


def _row(entry: dict, trials: Callable[[str], TrialRun]) -> tuple[str, ...]:
    report = inspect_net(load_net(CORPUS / entry["local_file"], None))
    url = f"https://github.com/{entry['repo']}/blob/{entry['commit']}/{entry['path']}"
    flavours = "<br>".join(f"{kind} ×{n}" for kind, n in report.flavour_counts.items())
    tested = "inspect, convert" if entry["bvlc_loadable"] else "inspect"
    return (family(entry), entry["repo"], f"[{entry['path']}]({url})", flavours,
            what_it_does(report), tested, trials(built_file(entry)).cell())


def render(trials: Callable[[str], TrialRun] = trial) -> str:
    """The whole section, heading included, ending with a newline.

    Args:
        trials: the build-and-run of a corpus file by name (tests pass the runs they made).
    """
    entries = json.loads((CORPUS / "LIST.json").read_text(encoding="utf-8"))
    rows = sorted((_row(e, trials) for e in entries),
                  key=lambda r: (r[0].lower(), r[1].lower(), r[2]))
    runs = sum(r[6] == "builds and runs" for r in rows)
    chains = sum(int(part.rsplit("×", 1)[1]) for r in rows for part in r[3].split("<br>") if part)
    repos = len({r[1] for r in rows})
    intro = (
        f"{len(rows)} public Caffe nets from {repos} repositories ({chains} BN layers), as their "
        "authors wrote them (`tests/data/corpus/`, described by its `LIST.json`). In "
        "`tests/test_corpus.py` every file is parsed and inspected, and its chain count, "
        "pairing and flavours are checked against `LIST.json`; the nets BVLC Caffe itself "
        "builds (Tested: convert) are also converted from caffemodels made in the tests, with "
        "scale factors 1, 95.2 and 999.98, and checked against the formula. Parsing all "
        f"{len(rows)} files takes {PARSE_SECONDS:.2f} s in one process "
        "(`python benchmarks/parse_corpus.py`). The last column is #12's runnable model: each "
        "net built by `bnconvert.build.trial.trial_run` without weights (on the adapted file, "
        "with an `Input` of a declared shape, where `LIST.json` has one) and run on a random "
        f"input of its declared shape with batch 1: {runs} of {len(rows)} build and run; the "
        "others name the layer types bnconvert cannot build (`needs: ...`), or the layer Caffe "
        "itself refuses at that shape, with Caffe's reason (`tests/test_build_corpus.py` "
        "checks every cell). This table is generated by `python scripts/tested_on_table.py` "
        "from an `inspect` run and a build-and-run of each file.")
    lines = [
        HEADING, "", textwrap.fill(intro, width=97), "",
        "| Family | Repository | File | Flavour (BN layers) | What bnconvert does | Tested | "
        "Builds and runs (#12) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines) + "\n"


def replace_section(readme: str, section: str) -> str:
    """README text with the ``## Tested on`` section replaced (or put before Development)."""
    if HEADING + "\n" in readme:
        start = readme.index(HEADING + "\n")
        end = readme.find("\n## ", start + len(HEADING))
        return readme[:start] + section + (readme[end:] if end >= 0 else "")
    anchor = readme.index("## Development")
    return readme[:anchor] + section + "\n" + readme[anchor:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args()
    section = render()
    if not args.write:
        sys.stdout.write(section)
        return 0
    readme = ROOT / "README.md"
    readme.write_text(replace_section(readme.read_text(encoding="utf-8"), section),
                      encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
