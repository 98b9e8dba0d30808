"""A model as a user writes it: its own names, the BatchNorm after the ReLU (Caffe's net has it
before), two parallel 1x1 branches of the same shape, and a 1x1 convolution as the classifier
where Caffe has an InnerProduct."""

import torch
from torch import nn


class TwoBranchNet(nn.Module):
    def __init__(self, stem_bias: bool = False) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=stem_bias)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(8)
        self.branch_a = nn.Conv2d(8, 4, 1)
        self.branch_b = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(8, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.act(self.stem(x)))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.head(self.pool(x)).flatten(1)
