"""V1 (``layers { type: CONVOLUTION }``) layer type enums -> V2 type strings, as Caffe's
``UpgradeV1LayerType`` maps them."""

from __future__ import annotations

from .._proto import caffe_pb2

__all__ = ["v1_type_name", "V1_TO_V2_TYPE"]

V1_TO_V2_TYPE = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def v1_type_name(value: int) -> str:
    """The V2 type string of a ``V1LayerParameter.LayerType`` value.

    Example:
        >>> v1_type_name(4)  # CONVOLUTION
        'Convolution'
    """
    try:
        enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(value)
    except ValueError:
        return f"V1 type {value}"
    return V1_TO_V2_TYPE.get(enum_name, enum_name.title().replace("_", ""))
