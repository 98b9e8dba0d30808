"""Hand-written PyTorch nets with the layers of the Caffe deploy files the #12 forward benchmark
builds, as a PyTorch user would write them (``nn.Sequential``, in-place ReLU as torchvision
does), and torchvision's resnet50 through the tests' import shim.

- ``HandResNet50``: KaimingHe's ResNet-50 deploy exactly (stride on the first 1x1 of a
  bottleneck, conv1 with bias, ceil-mode max pool, 7x7 average pool, softmax). torchvision's
  resnet50 is "ResNet v1.5" (stride on the 3x3: ~4.1 GFLOPs against ~3.9), so the benchmark
  reports both.
- ``HandMobileNetV1``: shicai/MobileNet-Caffe's ``mobilenet_deploy.prototxt``: conv1 3x3/2,
  13 depthwise (``group = C``) + pointwise pairs, each conv followed by BN and ReLU, global
  average pool, ``fc7`` as a 1x1 convolution with bias, softmax.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

__all__ = ["HandResNet50", "HandMobileNetV1", "torchvision_resnet50"]


class Bottleneck(nn.Module):
    """Caffe ResNet's bottleneck: stride on the first 1x1, BN+Scale as one BatchNorm."""

    def __init__(self, cin: int, mid: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, mid * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid * 4)
        self.relu = nn.ReLU(inplace=True)
        self.project = nn.Sequential(nn.Conv2d(cin, mid * 4, 1, stride, bias=False),
                                     nn.BatchNorm2d(mid * 4)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.project is None else self.project(x)
        return self.relu(y + shortcut)


class HandResNet50(nn.Module):
    """ResNet-50 as KaimingHe's deploy prototxt defines it, written by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True))
        layers, cin = [], 64
        for mid, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(count):
                layers.append(Bottleneck(cin, mid, stride if i == 0 else 1, i == 0))
                cin = mid * 4
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(7, 1)
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return torch.softmax(self.fc(x.flatten(1)), dim=1)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


#: (output channels of the pointwise conv, stride of the depthwise conv) of the 13 pairs
_MOBILENET_V1 = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                 (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class HandMobileNetV1(nn.Module):
    """MobileNet-v1 (width 1.0) as shicai's Caffe deploy file defines it, written by hand."""

    def __init__(self) -> None:
        super().__init__()
        layers, cin = [_conv_bn_relu(3, 32, 3, 2, 1)], 32
        for cout, stride in _MOBILENET_V1:
            layers.append(_conv_bn_relu(cin, cin, 3, stride, cin))  # depthwise
            layers.append(_conv_bn_relu(cin, cout, 1, 1, 1))  # pointwise
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Conv2d(1024, 1000, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3), keepdim=True)
        return torch.softmax(self.fc(x), dim=1)


def torchvision_resnet50() -> nn.Module | str:
    """torchvision's resnet50 (``weights=None``) imported as the tests import it, or why not."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from torchvision_shim import import_torchvision_models

        return import_torchvision_models().resnet50(weights=None)
    except BaseException as exc:  # noqa: BLE001  pytest.skip raises a BaseException
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"torchvision not importable: {exc}"
    finally:
        sys.path.pop(0)
