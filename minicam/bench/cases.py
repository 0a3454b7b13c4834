"""The benchmark cases: each builds minicam's side and PyTorch/captum's on the same inputs and weights."""

import numpy as np

from .timing import breakdown as timed_breakdown

__all__ = ["build", "torch_or_none"]


class _Case:
    def __init__(self, mine, theirs=None, flops=None, dtype=np.float32, breakdown=None):
        self.mine, self.theirs, self.flops, self.dtype = mine, theirs, flops, np.dtype(dtype)
        self.breakdown = breakdown  # callable(repeat) -> rows of timing.breakdown, or None


def torch_or_none():
    """``(torch, captum_attr_or_None)``, or ``(None, None)`` when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None, None
    try:
        from captum import attr
    except ImportError:
        attr = None
    return torch, attr


def _conv_case(c, f, size, use_torch):
    from ..layers import Conv2d

    rng = np.random.default_rng(0)
    n, k = 64, 3
    conv = Conv2d(c, f, k, padding=1, rng=0, dtype=np.float32)
    conv.params["b"] = rng.standard_normal(f).astype(np.float32)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    dout = rng.standard_normal((n, f, size, size)).astype(np.float32)

    def mine():
        conv.forward(x)
        conv.backward(dout)

    flops = 3 * 2 * n * f * c * k * k * size * size  # forward, dW and dx: one product each
    torch, _ = torch_or_none() if use_torch else (None, None)
    if torch is None:
        return _Case(mine, flops=flops)
    tconv = torch.nn.Conv2d(c, f, k, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.params["W"]))
        tconv.bias.copy_(torch.tensor(conv.params["b"]))
    tx, tdout = torch.tensor(x, requires_grad=True), torch.tensor(dout)

    def theirs():
        tconv(tx).backward(tdout)

    return _Case(mine, theirs, flops)


def _layer_case(make_mine, make_theirs, shape, use_torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = make_mine()
    dout = rng.standard_normal(layer.output_shape(shape)).astype(np.float32)

    def mine():
        layer.forward(x)
        layer.backward(dout)

    torch, _ = torch_or_none() if use_torch else (None, None)
    if torch is None:
        return _Case(mine)
    module = make_theirs(torch)
    tx, tdout = torch.tensor(x, requires_grad=True), torch.tensor(dout)

    def theirs():
        module(tx).backward(tdout)

    return _Case(mine, theirs)


def _train_case(use_torch):
    from .. import optim, zoo
    from ..losses import softmax_cross_entropy

    rng = np.random.default_rng(0)
    model = zoo.gap_net(rng=0, dtype=np.float32).train()
    x = rng.random((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    torch, _ = torch_or_none() if use_torch else (None, None)
    tmodel = _to_torch(model, torch) if torch is not None else None
    opt = optim.Adam(model, lr=1e-3)

    def mine():
        _, dscores = softmax_cross_entropy(model.forward(x), y)
        model.backward(dscores)
        opt.step()

    if torch is None:
        return _Case(mine)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def theirs():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    return _Case(mine, theirs)


def _to_torch(model, torch):
    from ..interop.torch import to_torch

    return to_torch(model, dtype=torch.float32 if model.layers[0].params["W"].dtype == np.float32 else torch.float64)


def _explain_case(name, use_torch):
    from .. import explain, zoo

    dtype = np.float64 if name in ("gradcam1", "occlusion") else np.float32
    model = zoo.pretrained("shapes-gap").astype(dtype).eval()
    rng = np.random.default_rng(0)
    n = 1 if name in ("gradcam1", "occlusion") else 64
    size = 64 if name == "occlusion" else 32
    x = rng.random((n, 3, size, size)).astype(dtype)
    cls = [int(i) for i in rng.integers(0, 4, n)]
    if name.startswith("gradcam"):
        mine = lambda: explain.grad_cam(model, x, cls)  # noqa: E731
    elif name == "guided64":
        mine = lambda: explain.guided_backprop(model, x, cls)  # noqa: E731
    else:
        mine = lambda: explain.occlusion(model, x, cls, window=8, stride=4)  # noqa: E731
    torch, attr = torch_or_none() if use_torch else (None, None)
    if torch is None or attr is None:
        return _Case(mine, dtype=dtype)
    net = _to_torch(model, torch)
    target = torch.tensor(cls)
    if name.startswith("gradcam"):
        method = attr.LayerGradCam(net, net.relu5)
        theirs = lambda: method.attribute(torch.tensor(x, requires_grad=True), target=target, relu_attributions=True)  # noqa: E731
    elif name == "guided64":
        method = attr.GuidedBackprop(net)
        theirs = lambda: method.attribute(torch.tensor(x, requires_grad=True), target=target)  # noqa: E731
    else:
        method = attr.Occlusion(net)

        def theirs():
            with torch.no_grad():
                method.attribute(torch.tensor(x), sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                 baselines=0.0, target=target, perturbations_per_eval=64)

    return _Case(mine, theirs, dtype=dtype)


def _torch_score_cam(torch, features, head, net, x, class_idx, batch_size=64):
    """:func:`minicam.score_cam` with its defaults, transcribed to torch (the reference of ``scorecam*``).

    Parameters
    ----------
    features, head : torch modules
        ``net`` cut after the explained layer: ``A = features(x)``, ``scores = head(A)``.
    net : torch module
        The whole model (the masked images go through it).
    x : tensor, shape (N, C, H, W)
    class_idx : long tensor, shape (N,)
    batch_size : int
        Bound on images per forward pass, as minicam's: all N samples of a channel in one pass.

    Returns
    -------
    tensor, shape (N, h, w)

    Notes
    -----
    Wang et al. 2020, eqs. 7-8 as minicam computes them: ``H^k`` is ``A^k``
    upsampled bilinearly (``align_corners=False``) and min-max normalised per
    (sample, channel), a flat map giving zeros; ``alpha_k = p_c(x * H^k) -
    p_c(0)`` (softmax probability, increase over the zero image);
    ``L = ReLU(sum_k alpha_k A^k)``.
    """
    with torch.no_grad():
        A = features(x)  # (N, K, h, w)
        head(A)  # the clean scores, which minicam computes too (to pick the class when none is given)
        n, k = A.shape[:2]
        rows = torch.arange(n)
        up = torch.nn.functional.interpolate(A, size=x.shape[2:], mode="bilinear", align_corners=False)
        flat = up.reshape(n, k, -1)
        lo, span = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True) - flat.amin(-1, keepdim=True)
        masks = ((flat - lo) / torch.where(span > 0, span, torch.ones_like(span))).reshape(up.shape)
        base = net(torch.zeros_like(x)).softmax(1)[rows, class_idx]
        weights = torch.empty((n, k), dtype=x.dtype)
        chunk = max(1, batch_size // n)
        for k0 in range(0, k, chunk):
            m = masks[:, k0 : k0 + chunk].transpose(0, 1)[:, :, None]  # (kc, N, 1, H, W)
            kc = m.shape[0]
            p = net((x[None] * m).reshape(kc * n, *x.shape[1:])).softmax(1).reshape(kc, n, -1)
            weights[:, k0 : k0 + kc] = (p[:, rows, class_idx] - base).T
        return torch.relu(torch.einsum("nk,nkhw->nhw", weights, A))


def _gap_case(name, n, use_torch, size=32):
    """``scorecam1``/``scorecam32``/``smoothgrad`` on the bundled shapes-gap model, ``n`` images, float32."""
    from .. import explain, zoo

    model = zoo.pretrained("shapes-gap").astype(np.float32).eval()
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, size, size)).astype(np.float32)
    cls = [int(i) for i in rng.integers(0, 4, n)]
    sigma = 0.15  # smoothgrad's default: the noise's std is sigma * (max(x) - min(x)) of each sample

    def mine():
        if name == "smoothgrad":
            return explain.smoothgrad(explain.saliency, model, x, cls, n_samples=8, sigma=sigma, rng=0)
        return explain.score_cam(model, x, cls, layer="relu5")

    # scorecam32 is scorecam1's batch-64 forward 32 times over: its breakdown would say the same, slowly
    torch, attr = torch_or_none() if use_torch else (None, None)
    theirs = net = None
    if torch is not None and attr is not None:
        net = _to_torch(model, torch)
        target = torch.tensor(cls)
        if name == "smoothgrad":
            method = attr.NoiseTunnel(attr.Saliency(net))
            std = float(sigma * (x.max() - x.min()))  # captum's stdevs is absolute: the same number (batch 1)
            theirs = lambda: method.attribute(  # noqa: E731
                torch.tensor(x, requires_grad=True), nt_type="smoothgrad", nt_samples=8, stdevs=std, target=target,
                abs=False)
        else:
            cut = list(dict(net.named_children())).index("relu5") + 1
            features, head, tx = net[:cut], net[cut:], torch.tensor(x)
            theirs = lambda: _torch_score_cam(torch, features, head, net, tx, target)  # noqa: E731

    breakdown = None if name == "scorecam32" else (lambda repeat: timed_breakdown(mine, model, theirs, net, repeat))
    return _Case(mine, theirs, breakdown=breakdown)


def _stage(name):
    # ResNet's top-level names: conv1, bn1, relu, maxpool | layer1..layer4 | avgpool, flatten, fc
    top = name.split(".")[0]
    return top if top.startswith("layer") else ("stem" if top in ("conv1", "bn1", "relu", "maxpool") else "head")



def _resnet18_case(use_torch, size=224, width=1.0):
    """Grad-CAM at ``layer4`` of ResNet-18 (``zoo.resnet18``, eval mode), one image, float32, with a breakdown."""
    from .. import explain, zoo

    model = zoo.resnet18(rng=0, width=width, dtype=np.float32)
    x = np.random.default_rng(0).random((1, 3, size, size)).astype(np.float32)
    cls = 5
    mine = lambda: explain.grad_cam(model, x, cls, layer="layer4")  # noqa: E731
    # forward products (Conv2d, Linear): 2 * outputs * inputs per output; the backward stops at layer4
    shapes = dict(model.output_shapes(x.shape))
    flops = sum(2 * int(np.prod(shapes[name])) * (lay.params["W"].size // lay.params["W"].shape[0])
                for name, lay in model.named_layers() if "W" in lay.params)
    torch, attr = torch_or_none() if use_torch else (None, None)
    if torch is None or attr is None:
        return _Case(mine, flops=flops, breakdown=lambda repeat: timed_breakdown(mine, model, repeat=repeat, stage=_stage))
    from ..interop.torch import to_torch

    net = to_torch(model, dtype=torch.float32)
    method = attr.LayerGradCam(net, net.layer4)
    target = torch.tensor([cls])

    def theirs():
        return method.attribute(torch.tensor(x, requires_grad=True), target=target, relu_attributions=True)

    return _Case(mine, theirs, flops, breakdown=lambda repeat: timed_breakdown(mine, model, theirs, net, repeat, _stage))


def build(name, use_torch):
    from ..layers import BatchNorm2d, MaxPool2d, ReLU

    if name == "conv16":
        return _conv_case(16, 32, 16, use_torch)
    if name == "conv3":
        return _conv_case(3, 16, 32, use_torch)
    if name == "conv3big":
        return _conv_case(3, 16, 64, use_torch)
    if name == "maxpool":
        return _layer_case(lambda: MaxPool2d(2), lambda t: t.nn.MaxPool2d(2), (64, 16, 32, 32), use_torch)
    if name == "relu":
        return _layer_case(ReLU, lambda t: t.nn.ReLU(), (64, 16, 16, 16), use_torch)
    if name == "batchnorm":
        return _layer_case(lambda: BatchNorm2d(16, dtype=np.float32), lambda t: t.nn.BatchNorm2d(16), (64, 16, 32, 32),
                           use_torch)
    if name == "train":
        return _train_case(use_torch)
    if name == "resnet18":
        return _resnet18_case(use_torch)
    if name in ("scorecam1", "scorecam32", "smoothgrad"):
        return _gap_case(name, 32 if name == "scorecam32" else 1, use_torch)
    return _explain_case(name, use_torch)
