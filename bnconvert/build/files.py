"""``convert --module``: the whole-model state_dict and the model source, written together.

The state_dict is the built module's, loaded from ``load_weights``' records: the same keys and
tensors ``convert --whole`` writes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import torch

from ..errors import OutputError
from ..read.net import load_net
from ..write.atomic import write_files_atomically
from ..write.fingerprint import remove_stale_manifest
from ..write.guard import refuse_inputs_as_outputs
from ..write.manifest import manifest_path_for
from .api import build_model
from .network import BuildOptions, BuiltNet
from .source import module_source

__all__ = ["write_model_files"]

PathLike = str | os.PathLike[str]


def write_model_files(prototxt: PathLike | None, caffemodel: PathLike, output: PathLike,
                      module_path: PathLike, options: BuildOptions | None = None) -> BuiltNet:
    """Build the net with its weights and write ``output`` (state_dict, ``.pt``) and
    ``module_path`` (Python source importing only torch) together, or neither. A bnconvert
    manifest of an earlier file at ``output`` (``OUTPUT.json``) is removed: it would describe
    a file that is gone.

    Raises:
        OutputError: an output is an input, both outputs are one file, not a ``.pt`` output.
        BnConvertError: the net cannot be built or its weights do not fit.
    """
    if Path(output).suffix != ".pt":
        raise OutputError(f"{output}: --module writes the whole-model state_dict as .pt; "
                          "name the output *.pt")
    refuse_inputs_as_outputs({"output": output, "module": module_path},
                             {"prototxt": prototxt, "caffemodel": caffemodel})
    net = load_net(prototxt, caffemodel)
    built = build_model(net, options or BuildOptions())
    source = module_source(built, str(prototxt or caffemodel)).encode("utf-8")
    buffer = io.BytesIO()
    torch.save(built.module.state_dict(), buffer)

    def weights(stream: BinaryIO) -> None:
        stream.write(buffer.getvalue())

    def code(stream: BinaryIO) -> None:
        stream.write(source)

    write_files_atomically([(Path(output), weights), (Path(module_path), code)], make_dirs=True)
    # A manifest left by an earlier conversion to this output no longer describes it.
    remove_stale_manifest(manifest_path_for(Path(output)), Path(output))
    return built
