"""torchvision's ResNet-50 with Caffe's pool1 (kernel 3, stride 2, no padding, rounding up), as
a user porting KaimingHe's ResNet-50 might write it: the strides still sit in the 3x3
convolutions, where KaimingHe's net has them in the 1x1."""

from torch import nn


def model() -> nn.Module:
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    return net
