"""Independent reading of any fixture case (tests/data/caffe/*, tests/data/whole/*) for the
whole-model tests: the prototxt and caffemodel through the generated protobuf module
(``NetParameter.FromString``), Caffe's recorded blob values from outputs.npz. Nothing here
uses bnconvert's readers or computes an expected value."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from bnconvert._proto import caffe_pb2
from tests.whole_fixtures import blob_array

DATA = Path(__file__).parent / "data"
CASES = sorted(p for sub in ("caffe", "whole") for p in (DATA / sub).iterdir()
               if (p / "model.caffemodel").is_file())
CASE_IDS = [f"{p.parent.name}/{p.name}" for p in CASES]



def case_files(case: Path) -> tuple[Path, Path]:
    """The case's deploy.prototxt and model.caffemodel."""
    return case / "deploy.prototxt", case / "model.caffemodel"


@cache
def definition(case: Path) -> caffe_pb2.NetParameter:
    """The case's deploy.prototxt."""
    message = caffe_pb2.NetParameter()
    text_format.Parse((case / "deploy.prototxt").read_text(), message)
    return message


@cache
def stored_blobs(case: Path) -> dict[str, tuple[caffe_pb2.BlobProto, ...]]:
    """The caffemodel's BlobProtos by layer name (``NetParameter.FromString``)."""
    model = caffe_pb2.NetParameter.FromString((case / "model.caffemodel").read_bytes())
    return {layer.name: tuple(layer.blobs) for layer in model.layer if len(layer.blobs)}


def arrays(case: Path, layer: str) -> tuple[np.ndarray, ...]:
    """The layer's blobs as float32 arrays in their stored shapes."""
    return tuple(blob_array(b) for b in stored_blobs(case).get(layer, ()))


@cache
def outputs(case: Path) -> dict[str, np.ndarray]:
    """Caffe's recorded first top of every layer (outputs.npz)."""
    with np.load(case / "outputs.npz") as npz:
        return {key: npz[key] for key in npz.files}


def layer_index(case: Path, name: str) -> int:
    """Position of the layer ``name`` in the prototxt."""
    return next(i for i, x in enumerate(definition(case).layer) if x.name == name)


def value_before(case: Path, index: int, blob: str) -> np.ndarray:
    """The value of ``blob`` as the layer at ``index`` read it (its last writer's output)."""
    layers = list(definition(case).layer)
    for layer in reversed(layers[:index]):
        if blob in layer.top:
            key = layer.name if layer.top[0] == blob else f"{layer.name}:{blob}"
            return outputs(case)[key]
    raise KeyError(blob)
