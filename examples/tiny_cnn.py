"""A user's own small PyTorch model, to check against minicam with

    python -m minicam check-torch --model examples/tiny_cnn.py --state-dict examples/tiny_cnn.pt \
        --input-shape 2,3,32,32

``check-torch`` imports this file and calls ``build_model()`` (``--builder``
names another function or a module-level ``nn.Sequential`` variable). The
architecture is written the usual PyTorch way: nested ``nn.Sequential``
containers, BatchNorm, a global-average-pooling head split into
``AdaptiveAvgPool2d(1)`` + ``Flatten``. Every module is one minicam can import
(see ``minicam.interop.torch``). The weights in ``tiny_cnn.pt`` come from
``make_tiny_cnn_state.py`` (fixed seed).
"""

from collections import OrderedDict

from torch import nn


def build_model(num_classes=4):
    """conv-bn-relu-pool, conv-relu-pool, conv-relu, GAP, dropout, linear: (N, 3, H, W) -> (N, num_classes)."""
    features = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, kernel_size=3, padding=1),
        nn.ReLU(),
    )
    classifier = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(16, num_classes),
    )
    return nn.Sequential(OrderedDict([("features", features), ("classifier", classifier)]))
