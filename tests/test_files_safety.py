"""A user's files are never lost or clobbered (issue #14): the output and its manifest change
together, an input is never an output, a manifest belongs to one file, permissions are the
usual ones, and missing folders are created."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import RESNET, run_cli


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of a real Caffe fixture's prototxt and caffemodel (the tests try to clobber them)."""
    for name in ("deploy.prototxt", "model.caffemodel"):
        shutil.copyfile(RESNET / name, tmp_path / name)
    return tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_failed_manifest_write_keeps_the_previous_output_and_manifest(tmp_path, files):
    prev = tmp_path / "prev.pt"
    assert run_cli("convert", *files, "-o", prev)[0] == 0
    (tmp_path / "notadir").write_text("a file where the manifest's folder would be")
    before = snapshot(tmp_path)
    code, _, err = run_cli("convert", *files, "-o", prev, "--prefix", "x.", "--manifest",
                           tmp_path / "notadir" / "m.json")
    assert code == 1 and err.startswith(f"bnconvert: error: {tmp_path / 'notadir' / 'm.json'}: "
                                        "cannot create the folder")
    assert snapshot(tmp_path) == before  # prev.pt and prev.pt.json untouched, no temporaries


@pytest.mark.parametrize("role", ["prototxt", "caffemodel"])
def test_the_manifest_path_cannot_be_an_input(tmp_path, files, role):
    target = files[0] if role == "prototxt" else files[1]
    before = snapshot(tmp_path)
    code, _, err = run_cli("convert", *files, "-o", tmp_path / "bn.pt", "--manifest", target)
    assert (code, err) == (1, f"bnconvert: error: {target}: the manifest is the {role} given "
                              f"as input; writing it would destroy the {role}; choose another "
                              "path\n")
    assert snapshot(tmp_path) == before


def test_the_output_cannot_be_the_caffemodel(tmp_path, files):
    before = snapshot(tmp_path)
    code, _, err = run_cli("convert", *files, "-o", files[1], "--format", "pt")
    assert (code, err) == (1, f"bnconvert: error: {files[1]}: the output is the caffemodel "
                              "given as input; writing it would destroy the caffemodel; "
                              "choose another path\n")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_output_linked_to_an_input_is_refused(tmp_path, files, link):
    alias = tmp_path / "alias.pt"
    (os.symlink if link == "symlink" else os.link)(files[1], alias)
    before = files[1].read_bytes()
    code, _, err = run_cli("convert", *files, "-o", alias)
    assert code == 1 and "the output is the caffemodel given as input" in err
    assert files[1].read_bytes() == before


def test_output_and_manifest_cannot_be_one_file(tmp_path, files):
    out = tmp_path / "bn.pt"
    code, _, err = run_cli("convert", *files, "-o", out, "--manifest", out)
    assert (code, err) == (1, f"bnconvert: error: {out}: the output and the manifest are the "
                              "same file; choose another path for one of them\n")
    assert not out.exists()


def test_no_manifest_removes_the_manifest_of_an_earlier_file(tmp_path, files):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *files, "-o", out)[0] == 0
    assert run_cli("convert", *files, "-o", out, "--prefix", "x.", "--no-manifest", "-q")[0] == 0
    assert not Path(f"{out}.json").exists()
    assert run_cli("verify", *files, out)[0] == 1  # keys x.* match no Caffe layer: fails...
    report = json.loads(run_cli("verify", *files, out, "--json")[1])
    assert report["manifest"] is None  # ...on the file's own merits, not on a stale manifest


def test_no_manifest_keeps_a_json_file_that_is_not_a_manifest_of_it(tmp_path, files):
    out = tmp_path / "bn.pt"
    Path(f"{out}.json").write_text('{"mine": true}')
    assert run_cli("convert", *files, "-o", out, "--no-manifest", "-q")[0] == 0
    assert Path(f"{out}.json").read_text() == '{"mine": true}'


def test_verify_refuses_a_manifest_of_another_file(tmp_path, files):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *files, "-o", out)[0] == 0
    old_manifest = Path(f"{out}.json").read_bytes()
    assert run_cli("convert", *files, "-o", out, "--dtype", "float64", "--no-manifest")[0] == 0
    Path(f"{out}.json").write_bytes(old_manifest)  # an earlier conversion's manifest
    code, stdout, err = run_cli("verify", *files, out)
    old, new = json.loads(old_manifest)["file_fingerprint"], out.stat().st_size
    assert code == 2 and stdout == ""
    assert err == (f"bnconvert: error: {out}.json: this manifest describes another file than "
                   f"{out} (recorded {old['size']} bytes, SHA-256 {old['sha256'][:12]}..., found "
                   f"{new} bytes, SHA-256 {_sha(out)[:12]}...); convert "
                   "again, or pass --no-manifest\n")
    assert run_cli("verify", *files, out, "--no-manifest")[0] == 0


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_records_size_and_sha256_of_the_file_and_the_caffe_files(tmp_path, files):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *files, "-o", out)[0] == 0
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["file_fingerprint"] == {"size": out.stat().st_size, "sha256": _sha(out)}
    assert manifest["source_fingerprints"] == {
        role: {"size": path.stat().st_size, "sha256": _sha(path)}
        for role, path in zip(("prototxt", "caffemodel"), files, strict=True)}


def test_verify_notes_caffe_files_that_differ_from_the_recorded_ones(tmp_path, files):
    out = tmp_path / "bn.pt"
    assert run_cli("convert", *files, "-o", out)[0] == 0
    with open(files[0], "a") as handle:
        handle.write("# edited after the conversion\n")
    code, stdout, _ = run_cli("verify", *files, out)
    assert code == 0
    assert (f"the Caffe files differ from the ones this file was converted from: the prototxt "
            f"{files[0]} ({files[0].stat().st_size} bytes, SHA-256 {_sha(files[0])[:12]}...; "
            f"recorded {(RESNET / 'deploy.prototxt').stat().st_size} bytes") in stdout
    assert "caffemodel" not in stdout.split("differ from")[1]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_0666_minus_the_umask(tmp_path, files, mask):
    old = os.umask(mask)
    try:
        assert run_cli("convert", *files, "-o", tmp_path / "bn.pt")[0] == 0
    finally:
        os.umask(old)
    for name in ("bn.pt", "bn.pt.json"):
        assert (tmp_path / name).stat().st_mode & 0o7777 == 0o666 & ~mask


def test_overwriting_keeps_the_existing_mode(tmp_path, files):
    out = tmp_path / "bn.t7"
    out.write_bytes(b"old")
    out.chmod(0o640)
    Path(f"{out}.json").write_text("{}")
    Path(f"{out}.json").chmod(0o600)
    assert run_cli("convert", *files, "-o", out)[0] == 0
    assert out.stat().st_mode & 0o7777 == 0o640 and out.read_bytes() != b"old"
    assert Path(f"{out}.json").stat().st_mode & 0o7777 == 0o600


def test_missing_output_folders_are_created(tmp_path, files):
    out = tmp_path / "build" / "nested" / "bn.pt"
    code, stdout, _ = run_cli("convert", *files, "-o", out)
    assert code == 0 and out.is_file() and Path(f"{out}.json").is_file()
    assert "missing folders are created" in " ".join(run_cli("convert", "--help")[1].split())


def test_a_failed_conversion_creates_no_folders(tmp_path, files):
    code, _, _ = run_cli("convert", files[1], files[0], "-o", tmp_path / "build" / "bn.pt")
    assert code == 2 and not (tmp_path / "build").exists()


def test_the_api_refuses_an_input_as_output_before_reading(tmp_path, files, monkeypatch):
    from bnconvert import api
    from bnconvert.errors import OutputError

    def no_reading(*args, **kwargs):
        raise AssertionError("read before the output paths were checked")

    monkeypatch.setattr(api, "load_net", no_reading)
    with pytest.raises(OutputError, match="the output is the prototxt given as input"):
        api.convert(files[0], files[1], files[0], fmt="pt")
