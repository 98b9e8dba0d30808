"""The Python API: read a Caffe net, get its converted layers, write them. The CLI calls these
functions and nothing else.

Example:
    >>> import bnconvert
    >>> records = bnconvert.load_batch_norms(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL)
    >>> [r.name for r in records][:2], records[0].module
    (['bn2a_branch1', 'bn2a_branch2a'], 'BatchNorm2d')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from .errors import BnConvertError, OutputError, UnsupportedLayerError
from .fold.batch_norm import fold_batch_norm_chain
from .fold.chains import ChainAnalysis, pair_batch_norm_chains
from .fold.options import FoldOptions
from .read.net import Net, load_net
from .records import ConvertedLayer, FoldedBatchNorm
from .write.atomic import staged_files
from .write.digest import DigestingStream
from .write.fingerprint import add_fingerprints, remove_stale_manifest, source_fingerprints
from .write.guard import output_paths, refuse_inputs_as_outputs
from .write.manifest import manifest_bytes, manifest_dict, manifest_path_for
from .write.registry import WriteOptions, Writer, writer_for
from .write.sync_behind import SyncBehind

if TYPE_CHECKING:
    import torch

__all__ = ["load_net", "analyze", "fold_net", "load_batch_norms", "load_weights",
           "whole_net", "to_state_dict", "save", "convert", "convert_net", "ConvertOptions",
           "Conversion"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that shapes one conversion (the CLI's options travel in one of these).

    Attributes:
        fold: how BN layers are read and folded (affine, strict, clamp_eps, flavour,
            momentum).
        write: dtype, key prefix, Torch7 layout, naming policy.
        fmt: the output format, None for the output's extension.
        manifest: True for ``<output>.json``, a path, or False for none.
        whole: every learned layer, not only the BN chains (``convert.convert_whole``).
        bn_fold: with ``whole``: ``"keep"`` BN chains as BatchNorms or ``"fuse"`` them into the
            layer before them.
        skip_unknown: with ``whole``: skip layers of unknown learned types (with a warning).
    """

    fold: FoldOptions = field(default_factory=FoldOptions)
    write: WriteOptions = field(default_factory=WriteOptions)
    fmt: str | None = None
    manifest: PathLike | bool = True
    whole: bool = False
    bn_fold: str = "keep"
    skip_unknown: bool = False

    @classmethod
    def from_settings(cls, base: ConvertOptions | None = None, **settings: Any) -> ConvertOptions:
        """``base`` (or the defaults) with any field of ``ConvertOptions``, ``FoldOptions`` or
        ``WriteOptions`` set by keyword, e.g. ``from_settings(strict=True, dtype="float64")``.

        Raises:
            TypeError: an unknown setting.
        """
        options = base or cls()
        groups: dict[str, Any] = {"fold": options.fold, "write": options.write}
        for group, value in list(groups.items()):
            own = {f.name for f in fields(value)} & settings.keys()
            groups[group] = replace(value, **{k: settings.pop(k) for k in own})
        return replace(options, **groups, **settings)


@dataclass(frozen=True, eq=False)
class Conversion:
    """What ``convert`` did: the records written, the net read, the manifest written."""

    records: tuple[ConvertedLayer, ...]
    net: Net
    output: Path
    manifest: Path | None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every record's warnings, in net order."""
        return tuple(w for r in self.records for w in r.warnings)


def analyze(net: Net, flavour: str | None = None) -> ChainAnalysis:
    """BatchNorm → Scale → Bias chains of a net (see ``fold.chains``)."""
    return pair_batch_norm_chains(net, flavour)


def fold_net(net: Net, options: FoldOptions | None = None,
             **settings: Any) -> list[FoldedBatchNorm]:
    """Fold every BatchNorm chain of ``net`` into a ``FoldedBatchNorm``.

    Args:
        options: a ``FoldOptions``; ``settings`` override its fields (``affine``, ``strict``,
            ``clamp_eps``, ``flavour``, ``momentum``).

    Raises:
        UnsupportedLayerError: chains with layers that cannot be folded (all listed at once).
        BnConvertError: missing or malformed blobs, bad values (see ``fold_batch_norm_chain``).
    """
    options = replace(options or FoldOptions(), **settings)
    if net.refused_by_caffe:
        raise UnsupportedLayerError(f"{net.describe()}: {net.refused_by_caffe}")
    unread = net.definition_problems() if net.source == "caffemodel" else ()
    if unread:
        raise BnConvertError(f"{net.describe()}: the net's definition in the caffemodel was not "
                             f"read faithfully ({'; '.join(unread)}); pass the prototxt too")
    analysis = pair_batch_norm_chains(net, options.flavour)
    problems = [p for chain in analysis.chains for p in chain.problems]
    if problems:
        raise UnsupportedLayerError(f"{net.describe()}: cannot convert: {'; '.join(problems)}")
    if not analysis.chains:
        raise BnConvertError(f"{net.describe()}: no BatchNorm layers found in the TEST-phase net; "
                             "nothing to convert")
    return [fold_batch_norm_chain(net, chain, options) for chain in analysis.chains]


def load_batch_norms(prototxt: PathLike | None, caffemodel: PathLike,
                     options: FoldOptions | None = None,
                     **settings: Any) -> list[FoldedBatchNorm]:
    """Read a Caffe net and return Caffe's effective BN parameters, one record per BatchNorm.

    Args:
        prototxt: the net definition, or None to use the layers stored in the caffemodel.
        caffemodel: the trained weights.
        options, settings: see ``fold_net`` (e.g. ``affine=True``, ``flavour="nvcaffe"``).

    Raises:
        BnConvertError: any problem with the inputs, with file, layer and what to do.
    """
    return fold_net(load_net(prototxt, caffemodel), options, **settings)


def whole_net(net: Net, fold: str = "keep", options: FoldOptions | None = None,
              skip_unknown: bool = False) -> list[ConvertedLayer]:
    """Every layer of ``net`` with learned blobs as records (see ``load_weights``); empty for a
    net without learned layers.

    Raises:
        BnConvertError: see ``convert.convert_whole``.
    """
    from .whole import convert_whole

    return convert_whole(net, fold, options, skip_unknown)


def load_weights(prototxt: PathLike | None, caffemodel: PathLike, *, fold: str = "keep",
                 options: FoldOptions | None = None, skip_unknown: bool = False,
                 **settings: Any) -> list[ConvertedLayer]:
    """Read a Caffe net and return every learned layer as a record: ``FoldedBatchNorm`` per BN
    chain (``fold="keep"``; with ``"fuse"`` chains fold into the layer before them where the
    graph allows), and a ``LearnedLayer`` kind (conv, conv_transpose, linear, embed, prelu,
    scale, bias) per other layer. ``to_state_dict`` and ``save`` accept them.

    Args:
        options, settings: how BN chains are read (see ``fold_net``).
        skip_unknown: skip layers of unknown learned types instead of failing.

    Raises:
        BnConvertError: unknown learned layers, missing weights, blobs that disagree with the
            prototxt, NaN/Inf, and everything ``load_batch_norms`` raises.

    Example:
        >>> records = load_weights(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, fold="fuse")
        >>> records[0].kind, records[0].module
        ('conv', 'Conv2d')
    """
    fold_options = replace(options or FoldOptions(), **settings)
    return whole_net(load_net(prototxt, caffemodel), fold, fold_options, skip_unknown)


def to_state_dict(records: Sequence[ConvertedLayer], options: WriteOptions | None = None,
                  **settings: Any) -> dict[str, torch.Tensor]:
    """The records as a PyTorch state_dict (imports torch); ``settings`` set ``WriteOptions``
    fields (``prefix``, ``dtype``, ``naming``)."""
    from .write.pt import to_state_dict as convert_records

    return convert_records(records, replace(options or WriteOptions(), **settings))


def save(records: Sequence[ConvertedLayer], output: PathLike, options: ConvertOptions | None = None,
         sources: dict[str, str | None] | None = None, **settings: Any) -> Path | None:
    """Write the records atomically in the format chosen by ``fmt`` or the extension, and the
    manifest beside them.

    The output and its manifest are written together (both complete, or neither changed);
    missing folders are created. With ``manifest=False`` a manifest at ``<output>.json`` that
    describes an earlier file is removed.

    Returns:
        The manifest path, or None.

    Raises:
        OutputError: unknown format, missing optional dependency, unwritable folder, an output
            path that is one of the ``sources``.
    """
    options = ConvertOptions.from_settings(options, **settings)
    output = Path(output)
    chosen, writer = writer_for(output, options.fmt)
    paths = output_paths(output, options.manifest)
    refuse_inputs_as_outputs(paths, sources or {})
    manifest_path = None if paths["manifest"] is None else Path(paths["manifest"])
    # The Caffe files are hashed for the manifest while the output is written (hashlib
    # releases the GIL): on a 553 MB caffemodel that is about a second off the wall time.
    with ThreadPoolExecutor(max_workers=1) as pool, \
            staged_files(make_dirs=True) as stage:  # the output and its manifest change together
        prints = pool.submit(source_fingerprints, sources or {}) if manifest_path else None
        # The output's own fingerprint is computed from the bytes as they are written.
        written: list[dict[str, Any]] = []
        stage(output, lambda stream: written.append(_write_digested(writer, records, stream,
                                                                    options.write)))
        if manifest_path is not None and prints is not None:
            described = manifest_dict(records, chosen, output, options.write, sources or {})
            content = manifest_bytes(add_fingerprints(described, written[0], prints.result()))
            stage(manifest_path, lambda stream: _write_all(stream, content))
    if manifest_path is None:
        remove_stale_manifest(manifest_path_for(output), output)
    return manifest_path


def _write_digested(writer: Writer, records: Sequence[ConvertedLayer], stream: BinaryIO,
                    options: WriteOptions) -> dict[str, Any]:
    """Write the records and return the fingerprint of the bytes written (the file is synced
    to disk in the background as it grows: ``SyncBehind``)."""
    with SyncBehind(stream) as synced, DigestingStream(cast(BinaryIO, synced)) as digesting:
        writer(records, cast(BinaryIO, digesting), options)
    return digesting.fingerprint()


def _write_all(stream: BinaryIO, content: bytes) -> None:
    stream.write(content)


def convert(prototxt: PathLike | None, caffemodel: PathLike, output: PathLike,
            options: ConvertOptions | None = None, **settings: Any) -> Conversion:
    """Read, fold and write in one call; every check runs before a byte is written.

    Args:
        options: a ``ConvertOptions``; ``settings`` set any of its (or its fold/write
            options') fields by name, e.g. ``strict=True, manifest=False``.

    Example:
        >>> out = getfixture("tmp_path") / "bn.pt"
        >>> done = convert(EXAMPLE_PROTOTXT, EXAMPLE_CAFFEMODEL, out)
        >>> len(done.records), done.manifest.name
        (4, 'bn.pt.json')
    """
    options = ConvertOptions.from_settings(options, **settings)
    chosen, _ = writer_for(Path(output), options.fmt)  # an unknown format fails first
    if options.whole and chosen == "t7":
        raise OutputError(f"{output}: Torch7 .t7 output holds BatchNorm modules only; write the "
                          "whole model (--whole) as .pt or .safetensors")
    refuse_inputs_as_outputs(output_paths(output, options.manifest),
                             {"prototxt": prototxt, "caffemodel": caffemodel})
    return convert_net(load_net(prototxt, caffemodel), output, options)


def convert_net(net: Net, output: PathLike, options: ConvertOptions | None = None,
                **settings: Any) -> Conversion:
    """Fold an already loaded net and write it (see ``convert``)."""
    options = ConvertOptions.from_settings(options, **settings)
    records: tuple[ConvertedLayer, ...] = tuple(
        whole_net(net, options.bn_fold, options.fold, options.skip_unknown)
        if options.whole else fold_net(net, options.fold))
    if not records:
        raise BnConvertError(f"{net.describe()}: no layers with learned blobs in the TEST-phase "
                             "net; nothing to convert")
    if writer_for(Path(output), options.fmt)[0] == "t7":
        from .fold.continuation import for_torch7

        records = for_torch7(records)  # Torch7 has no cumulative average: say what it gets
    sources = {"prototxt": net.prototxt, "caffemodel": net.caffemodel}
    manifest = save(records, output, options, sources=sources)
    return Conversion(records, net, Path(output), manifest)
