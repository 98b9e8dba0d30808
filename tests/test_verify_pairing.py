"""verify pairs BatchNorm, Scale and Bias on its own (``verify.walk``), so a pairing bug in the
converter fails verify instead of hiding in the reference; and one BN flavour rule gives one
verdict: inspect, convert and verify say the same about an Intel BatchNorm with
``use_global_stats: false``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bnconvert.fold.chains as chains_module
from bnconvert.api import convert
from bnconvert.fold.chains import pair_batch_norm_chains
from bnconvert.read.net import load_net
from bnconvert.verify import verify_file
from bnconvert.verify.walk import walk_chains

from caffe_builder import NetBuilder, blob
from conftest import CORPUS, RESNET, invoke_cli

CORPUS_NETS = sorted(CORPUS.glob("*.prototxt"))


def _names(chain) -> tuple[str | None, ...]:
    return tuple(x.name if x is not None else None
                 for x in (chain.batch_norm, chain.scale, chain.bias))


@pytest.mark.parametrize("path", CORPUS_NETS, ids=lambda p: p.name)
def test_the_walk_pairs_every_corpus_net_as_the_converter_does(path: Path) -> None:
    # Two implementations written apart; where convert reports a problem it pairs nothing.
    net = load_net(path, None)
    converter = [(_names(c), c.flavour) for c in pair_batch_norm_chains(net).chains
                 if not c.problems]
    walked = {c.batch_norm.name: (_names(c), c.flavour) for c in walk_chains(net)}
    assert len(walked) == len(pair_batch_norm_chains(net).chains)
    assert all(walked[names[0]] == (names, flavour) for names, flavour in converter)


def test_a_pairing_bug_in_the_converter_fails_verify(tmp_path: Path, monkeypatch) -> None:
    real_follow = chains_module._follow

    def forgets_scales(graph, head, wanted, rank, notes, problems):  # a converter bug
        return None if wanted == "Scale" else real_follow(graph, head, wanted, rank, notes,
                                                          problems)

    monkeypatch.setattr(chains_module, "_follow", forgets_scales)
    output = tmp_path / "bn.pt"
    convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", output)
    monkeypatch.undo()
    report = verify_file(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", output)
    assert not report.passed and {r.status for r in report.chains} == {"fail"}
    row = report.chains[0]
    assert row.layers == ("bn2a_branch1", "scale2a_branch1")
    assert row.reason.startswith(
        "the converted module was folded from other layers than the Caffe net pairs with "
        "'bn2a_branch1': the manifest records scale None (verify pairs 'scale2a_branch1'); ")
    # Without the manifest the numbers alone fail it: gamma is missing from the module.
    output.with_name("bn.pt.json").unlink()
    plain = verify_file(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", output)
    assert not plain.passed and plain.chains[0].max_rel_err > 0.1


def _intel_net(tmp_path: Path) -> tuple[Path, Path]:
    """Intel Caffe's merged BatchNorm (mean·s, var·s, s, gamma, beta) with batch statistics."""
    s = np.float32(999.98)
    mean, var = np.float32([1.0, -2.0, 3.0]), np.float32([4.0, 0.5, 6.0])
    blobs = [blob(mean * s), blob(var * s), blob([s]), blob([2.0, 0.5, -1.0]),
             blob([0.1, 0.2, 0.3])]
    builder = NetBuilder().input("data", [2, 3, 4, 4])
    builder.layer("bn", "BatchNorm", ["data"], ["data"], blobs)
    _, model = builder.save(tmp_path, prototxt=False)
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 '
        'dim: 4 dim: 4 } } }\nlayer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" '
        'batch_norm_param { use_global_stats: false } }\n')
    return prototxt, model


def test_intel_batch_statistics_get_one_verdict_in_every_command(tmp_path: Path) -> None:
    prototxt, model = _intel_net(tmp_path)
    shown = invoke_cli("inspect", str(prototxt), str(model))
    assert shown.exit_code == 0
    assert "bn: use_global_stats is false: Caffe uses batch statistics in TEST" in shown.output
    (row,) = json.loads(invoke_cli("inspect", str(prototxt), str(model),
                                   "--json").output)["chains"]
    assert (row["flavour_id"], row["use_global_stats"]) == ("intel", False)

    out = tmp_path / "bn.pt"
    converted = invoke_cli("convert", str(prototxt), str(model), "-o", str(out))
    assert converted.exit_code == 0
    assert "bnconvert: warning: bn: use_global_stats is false, so Caffe normalizes with each " \
           "batch's own statistics even in TEST" in converted.stderr
    entry = json.loads(Path(f"{out}.json").read_text())["layers"][0]
    assert (entry["flavour"], entry["use_global_stats"]) == ("intel", False)
    strict = invoke_cli("convert", str(prototxt), str(model), "-o",
                        str(tmp_path / "strict.pt"), "--strict")
    assert strict.exit_code == 1 and not (tmp_path / "strict.pt").exists()

    (checked,) = verify_file(prototxt, model, out).chains
    assert (checked.flavour, checked.status) == ("intel", "fail")
    assert "(use_global_stats: false)" in (checked.reason or "")
