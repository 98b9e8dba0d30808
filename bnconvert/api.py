"""The Python API: read a Caffe net, get canonical BN records, write them.

Example:
    >>> import bnconvert
    >>> records = bnconvert.load_batch_norms(  # doctest: +SKIP
    ...     "deploy.prototxt", "model.caffemodel")
    >>> state_dict = bnconvert.to_state_dict(records)  # doctest: +SKIP
    >>> bnconvert.save(records, "bn.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import BnConvertError, UnsupportedLayerError
from .fold.batch_norm import fold_batch_norm_chain
from .fold.chains import ChainAnalysis, pair_batch_norm_chains
from .fold.options import FoldOptions
from .read.net import Net, load_net
from .records import FoldedBatchNorm
from .write.atomic import staged_files
from .write.fingerprint import add_fingerprints, remove_stale_manifest
from .write.guard import output_paths, refuse_inputs_as_outputs
from .write.manifest import manifest_bytes, manifest_dict, manifest_path_for
from .write.registry import WriteOptions, writer_for

if TYPE_CHECKING:
    import torch

__all__ = ["load_net", "analyze", "fold_net", "load_batch_norms", "to_state_dict", "save",
           "convert", "convert_net"]

PathLike = str | os.PathLike[str]


def analyze(net: Net) -> ChainAnalysis:
    """BatchNorm → Scale → Bias chains of a net (see ``fold.chains``)."""
    return pair_batch_norm_chains(net)


def fold_net(net: Net, *, affine: bool = False, strict: bool = False,
             flavour: str | None = None, clamp_eps: bool = False) -> list[FoldedBatchNorm]:
    """Fold every BatchNorm chain of ``net`` into a ``FoldedBatchNorm``.

    Args:
        flavour: override the detected BN flavour (``bvlc``, ``nvcaffe``, ``intel``, ``segnet``,
            ``yjxiong``) of every BN-like layer.
        clamp_eps: raise PSPNet/yjxiong eps to at least 1e-5 (that fork's cuDNN builds do).

    Raises:
        UnsupportedLayerError: chains with layers that cannot be folded (all listed at once).
        BnConvertError: missing or malformed blobs, bad values (see ``fold_batch_norm_chain``).
    """
    if net.refused_by_caffe:
        raise UnsupportedLayerError(f"{net.describe()}: {net.refused_by_caffe}")
    analysis = pair_batch_norm_chains(net, flavour)
    problems = [p for chain in analysis.chains for p in chain.problems]
    if problems:
        raise UnsupportedLayerError(f"{net.describe()}: cannot convert: {'; '.join(problems)}")
    if not analysis.chains:
        raise BnConvertError(f"{net.describe()}: no BatchNorm layers found in the TEST-phase net; "
                             "nothing to convert")
    options = FoldOptions(affine=affine, strict=strict, clamp_eps=clamp_eps)
    records = [fold_batch_norm_chain(net, chain, options) for chain in analysis.chains]
    _check_unique_keys(net, records)
    return records


def _check_unique_keys(net: Net, records: Sequence[FoldedBatchNorm]) -> None:
    seen: dict[str, str] = {}
    for record in records:
        if record.key in seen:
            raise BnConvertError(f"{net.describe()}: two BatchNorm layers named "
                                 f"{record.layers.batch_norm!r} in the TEST-phase net")
        seen[record.key] = record.layers.batch_norm


def load_batch_norms(prototxt: PathLike | None, caffemodel: PathLike, *, affine: bool = False,
                     strict: bool = False, flavour: str | None = None,
                     clamp_eps: bool = False) -> list[FoldedBatchNorm]:
    """Read a Caffe net and return Caffe's effective BN parameters, one record per BatchNorm.

    Args:
        prototxt: the net definition, or None to use the layers stored in the caffemodel.
        caffemodel: the trained weights.
        affine: give BatchNorms without a Scale weight 1 / bias 0 instead of no weight/bias.
        strict: fail on ``use_global_stats: false`` instead of warning.
        flavour, clamp_eps: see ``fold_net``.

    Raises:
        BnConvertError: any problem with the inputs, with file, layer and what to do.

    Example:
        >>> records = load_batch_norms("deploy.prototxt", "model.caffemodel")  # doctest: +SKIP
        >>> records[0].key, records[0].running_var[:2]  # doctest: +SKIP
    """
    return fold_net(load_net(prototxt, caffemodel), affine=affine, strict=strict,
                    flavour=flavour, clamp_eps=clamp_eps)


def to_state_dict(records: Sequence[FoldedBatchNorm], *, prefix: str = "",
                  dtype: str = "float32") -> dict[str, torch.Tensor]:
    """The records as a PyTorch state_dict (imports torch)."""
    from .write.pt import to_state_dict as convert_records

    return convert_records(records, prefix, dtype)


def save(records: Sequence[FoldedBatchNorm], output: PathLike, *, fmt: str | None = None,
         options: WriteOptions = WriteOptions(), manifest: PathLike | bool = True,
         sources: dict[str, str | None] | None = None) -> Path | None:
    """Write the records atomically in the format chosen by ``fmt`` or the extension.

    The output and its manifest are written together (both complete, or neither changed);
    missing folders are created. With ``manifest=False`` a manifest at ``<output>.json`` that
    describes an earlier file is removed.

    Args:
        manifest: True for ``<output>.json``, a path, or False for none.

    Returns:
        The manifest path, or None.

    Raises:
        OutputError: unknown format, missing optional dependency, unwritable folder, an output
            path that is one of the ``sources``.
    """
    output = Path(output)
    chosen, writer = writer_for(output, fmt)
    paths = output_paths(output, manifest)
    refuse_inputs_as_outputs(paths, sources or {})
    manifest_path = None if paths["manifest"] is None else Path(paths["manifest"])
    with staged_files(make_dirs=True) as stage:  # the output and its manifest change together
        written = stage(output, lambda stream: writer(records, stream, options))
        if manifest_path is not None:
            described = manifest_dict(records, chosen, output, options, sources or {})
            content = manifest_bytes(add_fingerprints(described, written, sources or {}))
            stage(manifest_path, lambda stream: _write_all(stream, content))
    if manifest_path is None:
        remove_stale_manifest(manifest_path_for(output), output)
    return manifest_path


def _write_all(stream: BinaryIO, content: bytes) -> None:
    stream.write(content)


def convert(prototxt: PathLike | None, caffemodel: PathLike, output: PathLike, *,
            fmt: str | None = None, affine: bool = False, strict: bool = False,
            flavour: str | None = None, clamp_eps: bool = False,
            options: WriteOptions = WriteOptions(),
            manifest: PathLike | bool = True) -> list[FoldedBatchNorm]:
    """Read, fold and write in one call; every check runs before a byte is written.

    Example:
        >>> convert("deploy.prototxt", "model.caffemodel", "bn.pt")  # doctest: +SKIP
    """
    writer_for(Path(output), fmt)  # an unknown format fails before reading anything
    refuse_inputs_as_outputs(output_paths(output, manifest),
                             {"prototxt": prototxt, "caffemodel": caffemodel})
    return convert_net(load_net(prototxt, caffemodel), output, fmt=fmt, affine=affine,
                       strict=strict, flavour=flavour, clamp_eps=clamp_eps, options=options,
                       manifest=manifest)


def convert_net(net: Net, output: PathLike, *, fmt: str | None = None, affine: bool = False,
                strict: bool = False, flavour: str | None = None, clamp_eps: bool = False,
                options: WriteOptions = WriteOptions(),
                manifest: PathLike | bool = True) -> list[FoldedBatchNorm]:
    """Fold an already loaded net and write it (see ``convert``)."""
    records = fold_net(net, affine=affine, strict=strict, flavour=flavour, clamp_eps=clamp_eps)
    sources = {"prototxt": net.prototxt, "caffemodel": net.caffemodel}
    save(records, output, fmt=fmt, options=options, manifest=manifest, sources=sources)
    return records
