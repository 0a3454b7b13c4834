"""torchvision's AlexNet, VGG-11/16 (with and without BatchNorm) and ResNet-18/34/50, in torch alone.

The parity tests need these networks on the torch side, and torchvision cannot
always be imported next to the CPU build of torch. The classes below follow
torchvision v0.2x's source layout -- ``torchvision/models/alexnet.py``
(``AlexNet``), ``torchvision/models/vgg.py`` (``VGG``, ``make_layers``,
``cfgs``) and ``torchvision/models/resnet.py`` (``conv3x3``, ``conv1x1``,
``BasicBlock``, ``Bottleneck``, ``ResNet._make_layer``) -- so that the module
tree, the forward pass and the state-dict keys (names, order, shapes) are
torchvision's exactly: a state dict saved from ``torchvision.models.<name>()``
loads into ``<name>()`` here and gives the same output. Weights keep torch's
default initialisation (torchvision's own init schemes are left out; the tests
load random weights anyway). Only the options the tests use are kept: no
groups, dilation, ``zero_init_residual`` or ``norm_layer``.

Width rule
----------
Every builder takes ``width`` (default 1.0), so the tests can build tiny
instances for gradient checks. Each channel count ``c`` that torchvision's
full-size network has -- every convolution's output channels, every
BatchNorm's channels and the 4096 hidden units of the AlexNet/VGG classifiers
-- becomes::

    scaled(c, width) = max(1, int(round(c * width)))   # Python's round: ties go to even

The 3 input channels and ``num_classes`` are not scaled; the inputs of a layer
are the scaled outputs of the layer before (AlexNet's first Linear takes
``scaled(256) * 6 * 6``, VGG's ``scaled(512) * 7 * 7``). A Bottleneck's
output is ``scaled(4 * planes)`` (the full-size count, scaled), not
``4 * scaled(planes)``. Whether a residual block has a ``downsample`` branch is
decided on the full-size counts, so the state-dict keys are the same at every
width. ``width=1.0`` is torchvision's network. minicam's NumPy builders use the
same rule.
"""

from functools import partial

import torch
from torch import nn

__all__ = [
    "scaled", "AlexNet", "VGG", "make_layers", "cfgs", "BasicBlock", "Bottleneck", "ResNet",
    "alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "BUILDERS",
]


def scaled(c, width):
    """The channel count ``c`` of the full-size network at ``width`` (the rule above)."""
    return max(1, int(round(c * width)))


class AlexNet(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.5, width=1.0):
        super().__init__()
        c = partial(scaled, width=width)
        self.features = nn.Sequential(
            nn.Conv2d(3, c(64), kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c(64), c(192), kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c(192), c(384), kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c(384), c(256), kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c(256), c(256), kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c(256) * 6 * 6, c(4096)),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(c(4096), c(4096)),
            nn.ReLU(inplace=True),
            nn.Linear(c(4096), num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# torchvision's VGG configurations: output channels of each 3x3 conv, "M" = 2x2 max-pool.
cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
}


def make_layers(cfg, batch_norm=False, width=1.0):
    layers = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            v = scaled(v, width)
            conv2d = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            else:
                layers += [conv2d, nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features, num_classes=1000, dropout=0.5, width=1.0):
        super().__init__()
        c = partial(scaled, width=width)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c(512) * 7 * 7, c(4096)),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(c(4096), c(4096)),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(c(4096), num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs; ``inplanes``/``planes``/``outplanes`` are already scaled (``planes == outplanes``)."""

    expansion = 1

    def __init__(self, inplanes, planes, outplanes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # one module, applied twice (as torchvision does)
        self.conv2 = conv3x3(planes, outplanes)
        self.bn2 = nn.BatchNorm2d(outplanes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride: ResNet v1.5) -> 1x1 expanding to ``outplanes``."""

    expansion = 4

    def __init__(self, inplanes, planes, outplanes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, outplanes)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.relu = nn.ReLU(inplace=True)  # one module, applied three times
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, width=1.0):
        super().__init__()
        self.width = width
        self.inplanes = 64  # full-size count; scaled where modules are built
        self.conv1 = nn.Conv2d(3, self._c(64), kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self._c(64))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self._c(512 * block.expansion), num_classes)

    def _c(self, n):
        return scaled(n, self.width)

    def _make_layer(self, block, planes, blocks, stride=1):
        c, out = self._c, planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:  # decided at full size: same keys at every width
            downsample = nn.Sequential(conv1x1(c(self.inplanes), c(out), stride), nn.BatchNorm2d(c(out)))
        layers = [block(c(self.inplanes), c(planes), c(out), stride, downsample)]
        self.inplanes = out
        for _ in range(1, blocks):
            layers.append(block(c(out), c(planes), c(out)))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


def alexnet(num_classes=1000, dropout=0.5, *, width=1.0):
    return AlexNet(num_classes, dropout, width)


def _vgg(cfg, batch_norm, num_classes, dropout, width):
    return VGG(make_layers(cfgs[cfg], batch_norm, width), num_classes, dropout, width)


def vgg11(num_classes=1000, dropout=0.5, *, width=1.0):
    return _vgg("A", False, num_classes, dropout, width)


def vgg11_bn(num_classes=1000, dropout=0.5, *, width=1.0):
    return _vgg("A", True, num_classes, dropout, width)


def vgg16(num_classes=1000, dropout=0.5, *, width=1.0):
    return _vgg("D", False, num_classes, dropout, width)


def vgg16_bn(num_classes=1000, dropout=0.5, *, width=1.0):
    return _vgg("D", True, num_classes, dropout, width)


def resnet18(num_classes=1000, *, width=1.0):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width)


def resnet34(num_classes=1000, *, width=1.0):
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, width)


def resnet50(num_classes=1000, *, width=1.0):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, width)


# name -> builder, with torchvision's names (``torchvision.models.<name>``).
BUILDERS = {
    f.__name__: f for f in (alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18, resnet34, resnet50)
}
