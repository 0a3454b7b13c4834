"""AlexNet, VGG-11/16 (with and without BatchNorm) and ResNet-18/34/50 with torchvision's layout.

Every layer has the name of the module torchvision puts at the same place
(``features.0``, ``classifier.6``, ``layer4.1.conv2``, ``layer2.0.downsample.0``),
and every parameter its shape, so a torchvision state dict loads unchanged::

    state = torch.load("resnet18-f37072fd.pth")          # torchvision's file
    minicam.interop.keys.load_torch_state_dict(mc.zoo.resnet18(), state)

Where minicam needs a node torchvision does without, it is named so:
``flatten`` (torchvision calls ``torch.flatten(x, 1)`` in ``forward``), and in
a residual block one ReLU object per position, ``relu1``, ``relu2`` (and
``relu3`` in a Bottleneck), where torchvision applies its single ``relu``
two (three) times. Neither has parameters, so the state-dict keys are
torchvision's exactly.

Width rule
----------
``width`` scales every channel count ``c`` of the full-size network -- each
convolution's and BatchNorm's channels, the 4096 hidden units of the
AlexNet/VGG classifiers -- to :func:`scaled` ``(c, width) = max(1, int(round(c *
width)))``. The 3 input channels and ``num_classes`` are not scaled; a
Bottleneck's output is ``scaled(4 * planes)``; whether a residual block has a
``downsample`` is decided on the full-size counts, so the names are the same
at every width. ``width=1/16`` gives networks small enough to check by finite
differences; ``tests/torchvision_like.py`` builds the same tiny networks in torch.

Initialisation
--------------
minicam's own, seeded and without global state: He-normal convolutions and
linear layers (std ``sqrt(2 / fan_in)``), zero biases, BatchNorm ``gamma = 1``,
``beta = 0``, running mean 0 and variance 1; one ``numpy.random.Generator``
(made from ``rng``) draws every weight and drives the Dropout masks.
torchvision's initialisation schemes are not reproduced: these builders are
meant to receive trained weights.

Every builder returns its model in eval mode, ready to explain (Dropout the
identity, BatchNorm on its running statistics); call ``.train()`` to train.
"""

import numpy as np

from .._validate import as_generator, check_float, check_float_dtype, check_int
from ..layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from ..model import Residual, Sequential

__all__ = [
    "scaled",
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "IMAGENET_ARCHITECTURES",
]


def scaled(c, width):
    """The channel count ``c`` of the full-size network at ``width``: ``max(1, int(round(c * width)))``.

    Python's ``round`` (ties go to the even integer), as ``tests/torchvision_like.py``.
    """
    return max(1, int(round(c * width)))


def _check_width(width):
    return check_float(width, "width", low=0.0, low_inclusive=False)


def _check_dropout(dropout):
    return check_float(dropout, "dropout", low=0.0, high=1.0, high_inclusive=False)


def _numbered(nodes):
    """``[("0", node), ("1", node), ...]``: torch's ``nn.Sequential`` names."""
    return Sequential([(str(i), node) for i, node in enumerate(nodes)])


def _classifier(in_features, hidden, num_classes, dropout, *, dropout_first, gen, dtype):
    """AlexNet's ``(Dropout, Linear, ReLU) x 2`` or VGG's ``(Linear, ReLU, Dropout) x 2``, then a Linear."""
    nodes = []
    for fan_in in (in_features, hidden):
        pair = [Linear(fan_in, hidden, rng=gen, dtype=dtype), ReLU()]
        drop = Dropout(dropout, rng=gen)
        nodes += ([drop] + pair) if dropout_first else (pair + [drop])
    nodes.append(Linear(hidden, num_classes, rng=gen, dtype=dtype))
    return _numbered(nodes)


def alexnet(num_classes=1000, *, dropout=0.5, width=1.0, rng=None, dtype=np.float64):
    """AlexNet (Krizhevsky, Sutskever & Hinton 2012) as torchvision builds it.

    Parameters
    ----------
    num_classes : int, default 1000
    dropout : float in [0, 1), default 0.5
        Probability of the two Dropout layers of the classifier (active in
        training mode only).
    width : float > 0, default 1.0
        Channel factor (see the module's width rule); 1.0 is torchvision's network.
    rng : None, int or numpy.random.Generator
        Seed of the initialisation and of the Dropout masks.
    dtype : float64 (default) or float32

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). ``features`` (``"0"`` to
        ``"12"``: five convolutions, their ReLUs and three 3x3 stride-2
        max-pools), ``avgpool`` (``AdaptiveAvgPool2d((6, 6))``), ``flatten``,
        ``classifier`` (``"0"`` to ``"6"``: Dropout, Linear, ReLU, Dropout,
        Linear, ReLU, Linear).

    Shapes
    ------
    x : (N, 3, H, W) with ``H, W >= 63`` -> scores : (N, num_classes).
    For 224x224 inputs ``features.11`` is (N, 256, 13, 13) and ``features``
    (N, 256, 6, 6).

    Notes
    -----
    torchvision's ``models/alexnet.py`` layout: one tower, with the channel
    counts 64, 192, 384, 256, 256 of Krizhevsky 2014 ("One weird trick for
    parallelizing convolutional neural networks") rather than the 2012
    paper's 96, 256, 384, 384, 256 split over two GPUs. The default Grad-CAM
    layer is ``features.11`` (the last ReLU; the max-pool after it is
    skipped). At ``width=1`` the model has 61,100,840 parameters,
    torchvision's count.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    dropout, width, dtype = _check_dropout(dropout), _check_width(width), check_float_dtype(dtype)
    gen = as_generator(rng)

    def c(n):
        return scaled(n, width)

    def conv(c_in, c_out, k, **kwargs):
        return Conv2d(c_in, c_out, k, **kwargs, rng=gen, dtype=dtype)

    features = _numbered([
        conv(3, c(64), 11, stride=4, padding=2), ReLU(), MaxPool2d(3, stride=2),
        conv(c(64), c(192), 5, padding=2), ReLU(), MaxPool2d(3, stride=2),
        conv(c(192), c(384), 3, padding=1), ReLU(),
        conv(c(384), c(256), 3, padding=1), ReLU(),
        conv(c(256), c(256), 3, padding=1), ReLU(), MaxPool2d(3, stride=2),
    ])
    classifier = _classifier(c(256) * 6 * 6, c(4096), num_classes, dropout, dropout_first=True, gen=gen, dtype=dtype)
    model = Sequential([
        ("features", features),
        ("avgpool", AdaptiveAvgPool2d((6, 6))),
        ("flatten", Flatten()),
        ("classifier", classifier),
    ])
    return model.eval()


# torchvision's VGG configurations: output channels of each 3x3 convolution, "M" a 2x2 max-pool.
_VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # "A"
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # "D"
}


def _vgg(depth, batch_norm, num_classes, dropout, width, rng, dtype):
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    dropout, width, dtype = _check_dropout(dropout), _check_width(width), check_float_dtype(dtype)
    gen = as_generator(rng)
    nodes = []
    c_in = 3
    for v in _VGG_CONFIGS[depth]:
        if v == "M":
            nodes.append(MaxPool2d(2, stride=2))
            continue
        c_out = scaled(v, width)
        nodes.append(Conv2d(c_in, c_out, 3, padding=1, rng=gen, dtype=dtype))  # with a bias, BatchNorm or not
        if batch_norm:
            nodes.append(BatchNorm2d(c_out, dtype=dtype))
        nodes.append(ReLU())
        c_in = c_out
    classifier = _classifier(
        c_in * 7 * 7, scaled(4096, width), num_classes, dropout, dropout_first=False, gen=gen, dtype=dtype
    )
    model = Sequential([
        ("features", _numbered(nodes)),
        ("avgpool", AdaptiveAvgPool2d((7, 7))),
        ("flatten", Flatten()),
        ("classifier", classifier),
    ])
    return model.eval()


def vgg11(num_classes=1000, *, dropout=0.5, width=1.0, rng=None, dtype=np.float64):
    """VGG-11 (Simonyan & Zisserman 2015, configuration A) as torchvision builds it.

    Parameters
    ----------
    num_classes : int, default 1000
    dropout : float in [0, 1), default 0.5
        Probability of the two Dropout layers of the classifier (active in
        training mode only).
    width : float > 0, default 1.0
        Channel factor (see the module's width rule); 1.0 is torchvision's network.
    rng : None, int or numpy.random.Generator
        Seed of the initialisation and of the Dropout masks.
    dtype : float64 (default) or float32

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). ``features`` (``"0"`` to
        ``"20"``: eight 3x3 convolutions with padding 1 and a bias, each
        followed by a ReLU, and five 2x2 max-pools), ``avgpool``
        (``AdaptiveAvgPool2d((7, 7))``), ``flatten``, ``classifier`` (``"0"``
        to ``"6"``: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear).

    Shapes
    ------
    x : (N, 3, H, W) with ``H, W >= 32`` (five halvings) -> scores : (N, num_classes).
    For 224x224 inputs the last ReLU is (N, 512, 14, 14) and ``features``
    (N, 512, 7, 7).

    Notes
    -----
    torchvision's ``models/vgg.py`` layout (``make_layers(cfgs["A"])``). The
    default Grad-CAM layer is ``features.19`` (the last ReLU; the max-pool
    after it is skipped). At ``width=1`` the model has 132,863,336
    parameters, torchvision's count.
    """
    return _vgg(11, False, num_classes, dropout, width, rng, dtype)


def vgg11_bn(num_classes=1000, *, dropout=0.5, width=1.0, rng=None, dtype=np.float64):
    """VGG-11 with BatchNorm (Simonyan & Zisserman 2015, config. A; Ioffe & Szegedy 2015) as torchvision builds it.

    Parameters
    ----------
    num_classes, dropout, width, rng, dtype
        As :func:`vgg11`.

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). :func:`vgg11` with a
        ``BatchNorm2d`` between each convolution (which keeps its bias, as
        in torchvision) and its ReLU: ``features`` runs from ``"0"`` to ``"28"``.

    Notes
    -----
    ``make_layers(cfgs["A"], batch_norm=True)``. Smallest input 32x32. The
    default Grad-CAM layer is ``features.27`` (the last ReLU). At ``width=1``
    the model has 132,868,840 parameters, torchvision's count.
    """
    return _vgg(11, True, num_classes, dropout, width, rng, dtype)


def vgg16(num_classes=1000, *, dropout=0.5, width=1.0, rng=None, dtype=np.float64):
    """VGG-16 (Simonyan & Zisserman 2015, configuration D) as torchvision builds it.

    Parameters
    ----------
    num_classes, dropout, width, rng, dtype
        As :func:`vgg11`.

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). As :func:`vgg11` with
        thirteen convolutions: ``features`` runs from ``"0"`` to ``"30"``.

    Notes
    -----
    ``make_layers(cfgs["D"])``. Smallest input 32x32. The default Grad-CAM
    layer is ``features.29`` (the last ReLU; the max-pool ``features.30`` is
    skipped), (N, 512, 14, 14) for 224x224 inputs. At ``width=1`` the model
    has 138,357,544 parameters, torchvision's count.
    """
    return _vgg(16, False, num_classes, dropout, width, rng, dtype)


def vgg16_bn(num_classes=1000, *, dropout=0.5, width=1.0, rng=None, dtype=np.float64):
    """VGG-16 with BatchNorm (Simonyan & Zisserman 2015, config. D; Ioffe & Szegedy 2015) as torchvision builds it.

    Parameters
    ----------
    num_classes, dropout, width, rng, dtype
        As :func:`vgg11`.

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). :func:`vgg16` with a
        ``BatchNorm2d`` between each convolution and its ReLU: ``features``
        runs from ``"0"`` to ``"43"``.

    Notes
    -----
    ``make_layers(cfgs["D"], batch_norm=True)``. Smallest input 32x32. The
    default Grad-CAM layer is ``features.42`` (the last ReLU). At
    ``width=1`` the model has 138,365,992 parameters, torchvision's count.
    """
    return _vgg(16, True, num_classes, dropout, width, rng, dtype)


# -- ResNet ---------------------------------------------------------------------


def _bn(channels, dtype):
    return BatchNorm2d(channels, dtype=dtype)


def _basic_block(c_in, planes, c_out, stride, downsample, gen, dtype):
    """torchvision's BasicBlock: 3x3 (stride) -> BN -> ReLU -> 3x3 -> BN, plus the shortcut, then ReLU."""
    body = [
        ("conv1", Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False, rng=gen, dtype=dtype)),
        ("bn1", _bn(planes, dtype)),
        ("relu1", ReLU()),
        ("conv2", Conv2d(planes, c_out, 3, padding=1, bias=False, rng=gen, dtype=dtype)),
        ("bn2", _bn(c_out, dtype)),
    ]
    return Residual(body, shortcut=downsample, after=[("relu2", ReLU())], shortcut_name="downsample")


def _bottleneck(c_in, planes, c_out, stride, downsample, gen, dtype):
    """torchvision's Bottleneck: 1x1 -> 3x3 (the stride is here: ResNet v1.5) -> 1x1 expanding to ``c_out``."""
    body = [
        ("conv1", Conv2d(c_in, planes, 1, bias=False, rng=gen, dtype=dtype)),
        ("bn1", _bn(planes, dtype)),
        ("relu1", ReLU()),
        ("conv2", Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False, rng=gen, dtype=dtype)),
        ("bn2", _bn(planes, dtype)),
        ("relu2", ReLU()),
        ("conv3", Conv2d(planes, c_out, 1, bias=False, rng=gen, dtype=dtype)),
        ("bn3", _bn(c_out, dtype)),
    ]
    return Residual(body, shortcut=downsample, after=[("relu3", ReLU())], shortcut_name="downsample")


def _resnet(block, expansion, blocks_per_stage, num_classes, width, rng, dtype):
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    width, dtype = _check_width(width), check_float_dtype(dtype)
    gen = as_generator(rng)

    def c(n):
        return scaled(n, width)

    nodes = [
        ("conv1", Conv2d(3, c(64), 7, stride=2, padding=3, bias=False, rng=gen, dtype=dtype)),
        ("bn1", _bn(c(64), dtype)),
        ("relu", ReLU()),
        ("maxpool", MaxPool2d(3, stride=2, padding=1)),
    ]
    inplanes = 64  # full-size count, as torchvision's ResNet._make_layer tracks it
    for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
        stride = 1 if i == 0 else 2
        out = planes * expansion
        downsample = None
        if stride != 1 or inplanes != out:  # decided at full size: the same names at every width
            downsample = _numbered([
                Conv2d(c(inplanes), c(out), 1, stride=stride, bias=False, rng=gen, dtype=dtype),
                _bn(c(out), dtype),
            ])
        stage = [block(c(inplanes), c(planes), c(out), stride, downsample, gen, dtype)]
        stage += [block(c(out), c(planes), c(out), 1, None, gen, dtype) for _ in range(1, count)]
        nodes.append((f"layer{i + 1}", _numbered(stage)))
        inplanes = out
    nodes += [
        ("avgpool", AdaptiveAvgPool2d((1, 1))),
        ("flatten", Flatten()),
        ("fc", Linear(c(512 * expansion), num_classes, rng=gen, dtype=dtype)),
    ]
    return Sequential(nodes).eval()


def resnet18(num_classes=1000, *, width=1.0, rng=None, dtype=np.float64):
    """ResNet-18 (He, Zhang, Ren & Sun 2016) as torchvision builds it.

    Parameters
    ----------
    num_classes : int, default 1000
    width : float > 0, default 1.0
        Channel factor (see the module's width rule); 1.0 is torchvision's network.
    rng : None, int or numpy.random.Generator
        Seed of the initialisation.
    dtype : float64 (default) or float32

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). ``conv1`` (7x7, stride 2,
        padding 3), ``bn1``, ``relu``, ``maxpool`` (3x3, stride 2, padding 1),
        ``layer1`` to ``layer4`` (2, 2, 2, 2 BasicBlocks named ``"0"``,
        ``"1"``: :class:`~minicam.model.Residual` blocks of ``conv1, bn1,
        relu1, conv2, bn2``, then ``relu2`` after the addition; the first
        block of ``layer2`` to ``layer4`` halves the map in its ``conv1`` and
        has the shortcut ``downsample``: ``"0"`` a strided 1x1 convolution,
        ``"1"`` a BatchNorm), ``avgpool`` (``AdaptiveAvgPool2d((1, 1))``),
        ``flatten``, ``fc``. No convolution has a bias (a BatchNorm follows each).

    Shapes
    ------
    x : (N, 3, H, W), any ``H, W >= 1`` -> scores : (N, num_classes).
    ``layer4`` is (N, 512, 7, 7) for 224x224 inputs.

    Notes
    -----
    torchvision's ``models/resnet.py`` layout. The default Grad-CAM layer is
    ``layer4`` (the output of the last block). At ``width=1`` the model has
    11,689,512 parameters, torchvision's count.
    """
    return _resnet(_basic_block, 1, (2, 2, 2, 2), num_classes, width, rng, dtype)


def resnet34(num_classes=1000, *, width=1.0, rng=None, dtype=np.float64):
    """ResNet-34 (He, Zhang, Ren & Sun 2016) as torchvision builds it.

    Parameters
    ----------
    num_classes, width, rng, dtype
        As :func:`resnet18`.

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). As :func:`resnet18` with
        3, 4, 6, 3 BasicBlocks in ``layer1`` to ``layer4``.

    Notes
    -----
    Any input size from 1x1 up. The default Grad-CAM layer is ``layer4``,
    (N, 512, 7, 7) for 224x224 inputs. At ``width=1`` the model has
    21,797,672 parameters, torchvision's count.
    """
    return _resnet(_basic_block, 1, (3, 4, 6, 3), num_classes, width, rng, dtype)


def resnet50(num_classes=1000, *, width=1.0, rng=None, dtype=np.float64):
    """ResNet-50 (He, Zhang, Ren & Sun 2016) as torchvision builds it: v1.5, the stride in the 3x3 convolution.

    Parameters
    ----------
    num_classes, width, rng, dtype
        As :func:`resnet18`.

    Returns
    -------
    Sequential
        In eval mode (call ``.train()`` to train). As :func:`resnet18` with
        3, 4, 6, 3 Bottleneck blocks: ``conv1`` (1x1), ``bn1``, ``relu1``,
        ``conv2`` (3x3, carrying the stride), ``bn2``, ``relu2``, ``conv3``
        (1x1, to 4x the channels), ``bn3``, then ``relu3`` after the
        addition. The first block of every stage has a ``downsample``
        (``layer1.0``'s changes only the channels, 64 -> 256).

    Notes
    -----
    The paper's ResNet-50 strides the first 1x1 convolution of a block
    (v1); torchvision, and this builder, stride the 3x3 one (v1.5). Any
    input size from 1x1 up. The default Grad-CAM layer is ``layer4``,
    (N, 2048, 7, 7) for 224x224 inputs. At ``width=1`` the model has
    25,557,032 parameters, torchvision's count.
    """
    return _resnet(_bottleneck, 4, (3, 4, 6, 3), num_classes, width, rng, dtype)


IMAGENET_ARCHITECTURES = {
    f.__name__: f for f in (alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18, resnet34, resnet50)
}
"""Builders by torchvision's name (``torchvision.models.<name>``); kept apart from
:data:`minicam.zoo.ARCHITECTURES`, whose builders the ``train`` command calls on
minicam's 32x32 datasets."""
