"""Time parsing the 70 original corpus prototxts in one process (issue #6: under 2 s).

Each round reads every file of ``tests/data/corpus/LIST.json`` with ``load_net`` (the tolerant
text parser, solver and V1 handling, TEST-phase filtering) and, separately, pairs its BN chains
(``inspect_net``, which is what ``bnconvert inspect PROTOTXT`` does after reading). The first
round also pays for imports and cold caches and is reported on its own; the median of the
following rounds is what the README states.

Usage::

    python benchmarks/parse_corpus.py              # 5 rounds
    python benchmarks/parse_corpus.py --rounds 9 --target 2.0

Exits 1 when the median parse time is over ``--target`` seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "corpus"


def _round(files: list[Path]) -> tuple[float, float, dict[str, float]]:
    from bnconvert.inspect import inspect_net
    from bnconvert.read.net import load_net

    per_file: dict[str, float] = {}
    parse = analyse = 0.0
    for path in files:
        start = time.perf_counter()
        net = load_net(path, None)
        middle = time.perf_counter()
        inspect_net(net)
        end = time.perf_counter()
        per_file[path.name] = middle - start
        parse += middle - start
        analyse += end - middle
    return parse, analyse, per_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", type=float, default=2.0, help="seconds (default 2.0)")
    args = parser.parse_args()
    entries = json.loads((CORPUS / "LIST.json").read_text(encoding="utf-8"))
    files = [CORPUS / e["local_file"] for e in entries]
    total_bytes = sum(p.stat().st_size for p in files)
    start = time.perf_counter()
    first_parse, first_analyse, _ = _round(files)
    first_wall = time.perf_counter() - start
    rounds = [_round(files) for _ in range(max(args.rounds - 1, 1))]
    parse = statistics.median(r[0] for r in rounds)
    analyse = statistics.median(r[1] for r in rounds)
    slowest = sorted(rounds[-1][2].items(), key=lambda kv: -kv[1])[:5]
    print(f"{len(files)} files, {total_bytes / 1e6:.1f} MB, {len(rounds) + 1} rounds")
    print(f"first round (imports, cold): parse {first_parse:.3f} s, "
          f"+ pairing {first_analyse:.3f} s, wall {first_wall:.3f} s")
    print(f"median of the other rounds: parse {parse:.3f} s, + pairing {analyse:.3f} s "
          f"(target: parse < {args.target:g} s)")
    print("slowest files: " + ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in slowest))
    return 0 if parse < args.target else 1


if __name__ == "__main__":
    sys.exit(main())
