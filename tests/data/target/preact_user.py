"""Two pre-activation bottlenecks as a user writes them in PyTorch: own names, the projection
shortcut run after the main branch, and the stride on the 3x3 (``stride_on_1x1`` moves it)."""

import torch
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int, project: bool,
                 stride_on_1x1: bool = False) -> None:
        super().__init__()
        first, second = (stride, 1) if stride_on_1x1 else (1, stride)
        self.pre = nn.BatchNorm2d(cin)
        self.reduce = nn.Conv2d(cin, mid, 1, stride=first, bias=False)
        self.reduce_bn = nn.BatchNorm2d(mid)
        self.spatial = nn.Conv2d(mid, mid, 3, stride=second, padding=1, bias=False)
        self.spatial_bn = nn.BatchNorm2d(mid)
        self.expand = nn.Conv2d(mid, cout, 1, bias=False)
        self.project = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.pre(x))
        y = torch.relu(self.reduce_bn(self.reduce(a)))
        y = self.expand(torch.relu(self.spatial_bn(self.spatial(y))))
        return y + (self.project(a) if self.project is not None else x)


class TwoUnits(nn.Module):
    def __init__(self, stride_on_1x1: bool = False) -> None:
        super().__init__()
        self.unit1 = Bottleneck(16, 128, 512, 2, True, stride_on_1x1)
        self.unit2 = Bottleneck(512, 128, 512, 1, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unit2(self.unit1(x))
