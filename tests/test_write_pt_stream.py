"""Converting to ``.pt`` streams the file without torch (#11 "Speed and memory"): no torch
import, the same state_dict as ``torch.save`` of the records' tensors for every real fixture,
the manifest's SHA-256 taken from the bytes as they are written, and a failing write leaves
nothing behind."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import bnconvert
from bnconvert.errors import OutputError
from bnconvert.write import fingerprint as fingerprint_module
from bnconvert.write import pt_zip, sync_behind
from bnconvert.write.digest import DigestingStream
from tests.caffe_files import CASE_IDS, CASES, case_files, stored_blobs
from tests.test_write_pt_zip import assert_same_state

ROOT = Path(__file__).parent.parent
RESNET = ROOT / "tests" / "data" / "caffe" / "resnet_block"
#: the fixtures with learned blobs (pooling_semantics has none: nothing to convert)
LEARNED = [(case, name) for case, name in zip(CASES, CASE_IDS, strict=True)
           if any(stored_blobs(case).values())]

_CONVERT = """
import json, sys
from bnconvert.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
print(json.dumps({"code": code, "torch": sorted(m for m in sys.modules
                                                if m.split(".")[0] == "torch")}), file=sys.stderr)
"""


@pytest.mark.parametrize("output,flags", [
    ("bn.pt", []), ("whole.pt", ["--whole"]), ("fused.pth", ["--whole", "--fold", "fuse"]),
    ("whole.safetensors", ["--whole"]),
])
def test_convert_imports_no_torch(tmp_path: Path, output: str, flags: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, "convert", str(RESNET / "deploy.prototxt"),
         str(RESNET / "model.caffemodel"), *flags, "-q", "-o", str(tmp_path / output)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    outcome = json.loads(done.stderr.strip().splitlines()[-1])
    assert outcome == {"code": 0, "torch": []}, done.stderr
    assert (tmp_path / output).is_file()


@pytest.mark.parametrize("fold", ["keep", "fuse"])
@pytest.mark.parametrize("case", [c for c, _ in LEARNED], ids=[n for _, n in LEARNED])
def test_whole_fixture_loads_as_torch_save_of_its_tensors(case: Path, fold: str,
                                                          tmp_path: Path) -> None:
    prototxt, caffemodel = case_files(case)
    out = tmp_path / "model.pt"
    done = bnconvert.convert(prototxt, caffemodel, out, whole=True, bn_fold=fold)
    reference = io.BytesIO()
    torch.save(bnconvert.to_state_dict(done.records), reference)
    reference.seek(0)
    expected = torch.load(reference, weights_only=True)
    assert_same_state(torch.load(out, weights_only=True), expected)
    assert_same_state(torch.load(out, weights_only=True, mmap=True), expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".t7"])
def test_manifest_fingerprint_is_taken_while_writing(suffix: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    read_back: list[str] = []
    real = fingerprint_module.fingerprint

    def recording(path: str | os.PathLike[str]) -> dict[str, object]:
        read_back.append(str(path))
        return real(path)

    monkeypatch.setattr(fingerprint_module, "fingerprint", recording)
    out = tmp_path / f"bn{suffix}"
    bnconvert.convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", out)
    manifest = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    content = out.read_bytes()
    assert manifest["file_fingerprint"] == {"size": len(content),
                                            "sha256": hashlib.sha256(content).hexdigest()}
    assert not [p for p in read_back if Path(p).parent == tmp_path]  # the output: not re-read


def test_digesting_stream_hashes_large_and_small_writes() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.bytes(3 << 20), b"", b"x", memoryview(rng.bytes(2 << 20))[5:], rng.bytes(7)]
    out = io.BytesIO()
    with DigestingStream(out) as stream:
        for part in parts:
            assert stream.write(part) == len(part)
    assert out.getvalue() == b"".join(parts)
    assert stream.fingerprint() == {"size": len(out.getvalue()),
                                    "sha256": hashlib.sha256(out.getvalue()).hexdigest()}


def _disk_full_after_one_chunk(array: np.ndarray, chunk: int | None = None) -> Iterator[bytes]:
    yield array.reshape(-1)[:1].tobytes()
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("whole", [False, True])
def test_a_write_failing_midway_leaves_nothing(whole: bool, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = tmp_path / "model.pt"
    earlier.write_bytes(b"an earlier file")
    monkeypatch.setattr(pt_zip, "array_chunks", _disk_full_after_one_chunk)
    with pytest.raises(OutputError, match=r"model\.pt: writing failed: No space left on device"):
        bnconvert.convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", earlier,
                          whole=whole)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert earlier.read_bytes() == b"an earlier file"
    with pytest.raises(OutputError, match=r"fresh[/\\]model\.pt: writing failed"):
        bnconvert.convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel",
                          tmp_path / "fresh" / "model.pt", whole=whole)
    assert not (tmp_path / "fresh").exists()


def test_output_is_synced_behind_the_writer(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(sync_behind, "STEP", 1000)
    monkeypatch.setattr(sync_behind, "_SYNC", lambda fd: synced.append(fd))
    out = tmp_path / "whole.pt"
    bnconvert.convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel", out, whole=True)
    assert synced and torch.load(out, weights_only=True)


def test_a_failing_background_sync_fails_the_write(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sync_behind, "STEP", 1000)
    monkeypatch.setattr(sync_behind, "_SYNC", failing)
    with pytest.raises(OutputError, match=r"whole\.pt: writing failed: Input/output error"):
        bnconvert.convert(RESNET / "deploy.prototxt", RESNET / "model.caffemodel",
                          tmp_path / "whole.pt", whole=True)
    assert list(tmp_path.iterdir()) == []
