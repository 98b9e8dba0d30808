"""Files of the wrong kind are named for what they are (issue #14): given as a caffemodel, a
prototxt or the converted file to ``verify``, they end in one line, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bnconvert.read.sniff import sniff

from conftest import CAFFE, DATA, RESNET_FILES, run_cli

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 102400\n"
T7 = DATA / "torch7" / "samples" / "bn4_float_fresh_binary.t7"


def make(tmp_path: Path, kind: str) -> Path:
    """A file of ``kind``, written by the tool that makes such files where one is at hand."""
    path = tmp_path / f"thing.{kind}"
    if kind == "npy":
        np.save(path, np.zeros(3, np.float32))
    elif kind == "pt":
        assert run_cli("convert", *RESNET_FILES, "-o", path, "--no-manifest", "-q")[0] == 0
    elif kind == "hdf5":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # the HDF5 superblock signature
    elif kind == "lfs":
        path.write_bytes(LFS)
    elif kind == "json":
        path.write_text('{\n  "layers": []\n}\n')
    elif kind == "t7":
        shutil.copyfile(T7, path)
    return path


KINDS = {"npy": "a NumPy array file (.npy)", "pt": "a zip archive (e.g. a PyTorch .pt file)",
         "hdf5": "an HDF5 file (e.g. a Keras .h5 model)",
         "lfs": "a Git LFS pointer (the real file was never downloaded)",
         "json": "a JSON file", "t7": "a Torch7 file (.t7)"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wrong_kind_given_as_caffemodel(tmp_path, kind):
    path = make(tmp_path, kind)
    code, _, err = run_cli("convert", RESNET_FILES[0], path, "-o", tmp_path / "out.pt")
    hint = "; run `git lfs pull` to fetch it" if kind == "lfs" else ""
    assert (code, err) == (2, f"bnconvert: error: {path}: this is {KINDS[kind]}, not a "
                              f"caffemodel{hint}\n")
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wrong_kind_given_as_prototxt(tmp_path, kind):
    path = make(tmp_path, kind)
    code, _, err = run_cli("inspect", path, RESNET_FILES[1])
    assert code == 2 and err.startswith(f"bnconvert: error: {path}: this is {KINDS[kind]}, "
                                        "not a text prototxt")


def test_an_lfs_pointer_alone_is_named_as_the_caffemodel(tmp_path):
    path = tmp_path / "model.caffemodel"
    path.write_bytes(LFS)
    code, _, err = run_cli("inspect", path)
    assert code == 2 and "this is a Git LFS pointer (the real file was never downloaded), " \
        "not a caffemodel; run `git lfs pull` to fetch it" in err


@pytest.mark.parametrize(("content", "what"), [
    (b"hello, not a model\n", "a text file"),
    (LFS, "a Git LFS pointer (the real file was never downloaded)"),
    (b"", "an empty file"),
    (b"\x00\x01\x02garbage", "a file of no known kind"),
])
def test_junk_given_to_verify_is_one_line_and_exit_2(tmp_path, content, what):
    path = tmp_path / "bn.pt"
    path.write_bytes(content)
    code, stdout, err = run_cli("verify", *RESNET_FILES, path)
    assert (code, stdout) == (2, "")
    assert err.startswith(f"bnconvert: error: {path}: this is {what}, not a PyTorch .pt file")
    assert len(err.splitlines()) == 1


def test_a_t7_named_pt_is_read_as_t7_by_its_magic_bytes(tmp_path):
    t7 = tmp_path / "bn.t7"
    assert run_cli("convert", *RESNET_FILES, "-o", t7, "--no-manifest", "-q")[0] == 0
    renamed = t7.rename(tmp_path / "bn.pt")
    code, stdout, _ = run_cli("verify", *RESNET_FILES, renamed)
    assert code == 0 and "bn2a_branch1" in stdout


def test_the_manifest_format_wins_over_magic_bytes_and_extension(tmp_path):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *RESNET_FILES, "-o", out, "-q")[0] == 0
    manifest = Path(f"{out}.json")
    manifest.write_text(manifest.read_text().replace('"format": "pt"', '"format": "t7"'))
    code, _, err = run_cli("verify", *RESNET_FILES, out)
    assert code == 2 and f"{out}: this is a zip archive (e.g. a PyTorch .pt file), not a " \
        "Torch7 .t7 file (the format the manifest records)" in err


@pytest.mark.parametrize(("head", "name"), [
    (b"\x93NUMPY\x01\x00", "npy"), (b"PK\x03\x04", "zip"), (b"\x80\x02\x8a\x0a", "pickle"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"), (LFS, "lfs"), (b' {"a": 1}', "json"), (b"[1, 2]", "json"),
    ((3).to_bytes(4, "little") + (1).to_bytes(4, "little"), "t7"), (b"4\n1\n3\nV 1\n", "t7"),
    ((13).to_bytes(8, "little") + b'{"a":{"b":1}}', "safetensors"),
])
def test_sniff_signatures(head, name):
    kind = sniff(head)
    assert kind is not None and kind.name == name


@pytest.mark.parametrize("case", ["resnet_block", "bn_only", "legacy_blob_dims"])
def test_real_caffe_files_are_no_other_kind(case):
    for name in ("deploy.prototxt", "model.caffemodel"):
        assert sniff((CAFFE / case / name).read_bytes()[:64]) is None
