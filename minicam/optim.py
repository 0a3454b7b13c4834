"""Optimizers: stochastic gradient descent with momentum, and Adam.

Both follow PyTorch's update rules exactly (``torch.optim.SGD`` with
``dampening=0, nesterov=False`` and ``torch.optim.Adam`` with
``amsgrad=False``), so that a step taken here and a step taken there from
the same weights and gradients give the same weights.

An optimizer holds a model, not a list of arrays: each :meth:`step` reads
``layer.grads[key]`` (written by the last ``model.backward``) and replaces
``layer.params[key]`` for every ``(layer, key)`` of ``model.parameters()``.
It replaces the array rather than updating it in place, so an array that a
caller took from the model before the step (``W = model["conv1"].params["W"]``)
keeps its old values. Its state (momentum buffers, moment estimates) is in
each parameter's dtype: a float32 model trains in float32.
"""

import numpy as np

from ._validate import check_float

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Base class: holds the model and the learning rate, checks gradients.

    Parameters
    ----------
    model : minicam.Sequential
        Anything with ``parameters()`` yielding ``(layer, key)`` pairs and
        ``items()`` yielding ``(name, layer)`` pairs.
    lr : float
        Learning rate, > 0. May be changed between steps (``opt.lr = ...``)
        for a schedule.
    """

    def __init__(self, model, lr):
        if not (hasattr(model, "parameters") and hasattr(model, "named_layers")):
            raise TypeError(f"model must be a minicam.Sequential, got {type(model).__name__}")
        self.model = model
        self.lr = check_float(lr, "lr", low=0.0, low_inclusive=False)
        # Parameter names for error messages ("conv1.W"), by layer identity.
        self._names = {id(layer): name for name, layer in model.named_layers()}
        self._slots = list(model.parameters())
        if not self._slots:
            raise ValueError("model has no trainable parameters: nothing to optimize")
        self.t = 0  # number of steps taken
        self.state = [{} for _ in self._slots]

    def _grad(self, layer, key):
        """The gradient of ``layer.params[key]``, checked (shape, finite)."""
        p, g = layer.params[key], layer.grads[key]
        name = f"{self._names.get(id(layer), type(layer).__name__)}.{key}"
        if g.shape != p.shape:
            raise ValueError(f"gradient of {name} has shape {g.shape}, its parameter {p.shape}")
        if not np.all(np.isfinite(g)):
            # Almost always divergence: a learning rate too large for the loss.
            raise ValueError(
                f"gradient of {name} contains NaN or infinity (training diverged? try a smaller lr, got lr={self.lr!r})"
            )
        return g.astype(p.dtype, copy=False)

    def step(self):
        """Update every parameter from its current gradient. Returns ``None``."""
        self.t += 1
        for (layer, key), state in zip(self._slots, self.state):
            p = layer.params[key]
            layer.params[key] = self._update(p, self._grad(layer, key), state).astype(p.dtype, copy=False)

    def _update(self, p, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({args})"

    def _hyper(self):
        return {"lr": self.lr}


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay (PyTorch's rule).

    Parameters
    ----------
    model : minicam.Sequential
    lr : float
        Learning rate :math:`\\eta > 0`.
    momentum : float in [0, 1), default 0
        :math:`\\mu`; 0 is plain SGD.
    weight_decay : float >= 0, default 0
        :math:`\\lambda`, an L2 penalty :math:`\\tfrac{\\lambda}{2}\\lVert p\\rVert^2`
        added to the loss (through its gradient).

    Notes
    -----
    At step :math:`t = 1, 2, \\dots`, for each parameter :math:`p` with gradient :math:`g`:

    .. math::
        g' &= g + \\lambda p \\\\
        b_t &= g' \\ \\text{if}\\ t = 1, \\quad \\text{else}\\ \\mu\\, b_{t-1} + g' \\\\
        p &\\leftarrow p - \\eta\\, b_t

    This is ``torch.optim.SGD`` with ``dampening=0, nesterov=False``: the
    first step puts the gradient itself in the buffer (not ``(1-\\mu) g``),
    so the effective step size grows to about :math:`\\eta / (1 - \\mu)` on
    a steady gradient.
    """

    def __init__(self, model, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(model, lr)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_inclusive=False)
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0.0)

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            buf = g.copy() if buf is None else self.momentum * buf + g
            state["momentum_buffer"] = buf
            g = buf
        return p - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight decay (PyTorch's rule).

    Parameters
    ----------
    model : minicam.Sequential
    lr : float, default 1e-3
        Step size :math:`\\eta > 0`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates :math:`\\beta_1, \\beta_2 \\in [0, 1)` of the first and
        second moment estimates.
    eps : float, default 1e-8
        :math:`\\epsilon > 0`, added to the denominator.
    weight_decay : float >= 0, default 0
        :math:`\\lambda`, added to the gradient as :math:`\\lambda p` (L2
        penalty, as ``torch.optim.Adam``; not AdamW's decoupled decay).

    Notes
    -----
    At step :math:`t = 1, 2, \\dots`, with :math:`m_0 = v_0 = 0`:

    .. math::
        g' &= g + \\lambda p \\\\
        m_t &= \\beta_1 m_{t-1} + (1 - \\beta_1)\\, g' \\\\
        v_t &= \\beta_2 v_{t-1} + (1 - \\beta_2)\\, g'^2 \\\\
        \\hat m_t &= m_t / (1 - \\beta_1^t), \\quad \\hat v_t = v_t / (1 - \\beta_2^t) \\\\
        p &\\leftarrow p - \\eta\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    The bias corrections undo the zero start of :math:`m` and :math:`v`: on
    the first step :math:`\\hat m_1 / \\sqrt{\\hat v_1} = \\mathrm{sign}(g')`
    (up to :math:`\\epsilon`), so every parameter moves by about :math:`\\eta`.
    PyTorch computes the same quantity as
    ``p - (lr / (1 - b1**t)) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (
            check_float(betas[0], "betas[0]", low=0.0, high=1.0, high_inclusive=False),
            check_float(betas[1], "betas[1]", low=0.0, high=1.0, high_inclusive=False),
        )
        self.eps = check_float(eps, "eps", low=0.0, low_inclusive=False)
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0.0)

    def _hyper(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, p, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        m = state.get("exp_avg", np.zeros_like(p))
        v = state.get("exp_avg_sq", np.zeros_like(p))
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * (g * g)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        # PyTorch's arrangement of the bias corrections (same value as the
        # formula in the docstring, same rounding as torch).
        step_size = self.lr / (1.0 - b1**self.t)
        denom = np.sqrt(v) / np.sqrt(1.0 - b2**self.t) + self.eps
        return p - step_size * (m / denom)
