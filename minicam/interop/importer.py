"""PyTorch -> minicam: :func:`from_torch` traces a module's ``forward`` with ``torch.fx`` and rebuilds it.

How a traced graph becomes a minicam model
------------------------------------------
1. ``torch.fx.symbolic_trace`` records the forward as a graph of calls.
   Supported modules (:data:`SUPPORTED_MODULES`) are leaves of the trace;
   everything else (``nn.Sequential``, a ResNet's blocks, your own modules)
   is traced through, so only the leaf modules and a few functions remain:
   ``F.relu``/``torch.relu``/``Tensor.relu`` (in place or not), ``torch.flatten(x, 1)``/
   ``Tensor.flatten(1)``/``x.view(x.size(0), -1)``/``x.reshape(x.shape[0], -1)``,
   and ``+``/``torch.add``/``Tensor.add`` of two tensors.
2. The graph must be a chain in which a tensor feeding two consumers (a
   fork) is joined again by an addition of the two paths: that addition is
   a :class:`~minicam.model.Residual` block. The path with no layers (if
   any) is the shortcut; otherwise the addition's first operand is the body
   (``out += identity`` in torchvision).
3. The layers are grouped by their torch module paths into nested
   containers, so minicam's names are torch's: ``layer4.1.conv1`` is the
   module ``layer4.1.conv1``; a block whose addition is followed only by
   layers of the same module becomes one ``Residual`` with those layers as
   ``after`` (torchvision's BasicBlock: ``layer4.1`` with ``relu2``).

Names that torch does not give
------------------------------
- A module called ``k > 1`` times (torchvision's blocks reuse one ``relu``)
  becomes ``k`` minicam layers, ``relu1``, ..., ``relu<k>`` (a name ending
  in a digit gets ``_1``, ...). minicam needs one layer per call: each
  keeps its own input for the backward pass.
- A function (``F.relu``, ``torch.flatten``) is named after what it does:
  ``relu``, ``flatten`` (numbered the same way when repeated in one module),
  inside the module whose ``forward`` calls it.
- An addition that is not the first step of its own module's block becomes
  a ``Residual`` named ``add`` (``add1``, ... when repeated).

:func:`layer_map` gives, for every minicam layer, the torch module path (or
the traced function's node) whose output it is.
"""

import operator

import numpy as np

from .._validate import as_generator
from ..layers import Flatten, GlobalAvgPool2d, ReLU
from ..model import Residual, Sequential
from ._torch_base import SUPPORTED_MODULES, nn, numpy_dtype, torch
from .modules import SUPPORTED, is_gap_pair, leaf_from_torch

__all__ = ["from_torch", "layer_map"]


# ---------------------------------------------------------------------------
# The traced graph
# ---------------------------------------------------------------------------


class _Tracer(torch.fx.Tracer):
    # Every supported module type (and its subclasses, refused later by name)
    # is a leaf: its call stays one node of the graph.
    def is_leaf_module(self, m, qualname):
        return isinstance(m, SUPPORTED_MODULES) or super().is_leaf_module(m, qualname)


_RELUSUPPORTED = {torch.relu, torch.relu_, torch.nn.functional.relu}
_ADDSUPPORTED = {operator.add, operator.iadd, torch.add}
_FLATTENSUPPORTED = {torch.flatten}


def _node_label(node):
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
    return f"node {node.name!r} ({node.op} {target})"


def _is_shape_node(node):
    """``x.size(0)``, ``x.shape``, ``x.shape[0]``: a number, not a tensor of the chain."""
    if node.op == "call_method" and node.target == "size":
        return True
    if node.op == "call_function" and node.target is getattr and len(node.args) > 1 and node.args[1] == "shape":
        return True
    return (node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node)
            and _is_shape_node(node.args[0]))


def _is_batch_size(arg):
    # x.size(0) or x.shape[0]
    if not isinstance(arg, torch.fx.Node):
        return False
    if arg.op == "call_method" and arg.target == "size":
        return tuple(arg.args[1:]) == (0,) and not arg.kwargs
    return arg.op == "call_function" and arg.target is operator.getitem and _is_shape_node(arg.args[0]) and arg.args[1] == 0


def _kind(node):
    """``"relu"``, ``"flatten"``, ``"add"`` for a supported function call; a ValueError naming it otherwise."""
    op, target, args, kwargs = node.op, node.target, node.args, node.kwargs
    if op == "call_function" and target in _RELUSUPPORTED or op == "call_method" and target in ("relu", "relu_"):
        if set(kwargs) - {"inplace"} or len(args) > (2 if op == "call_function" else 1):
            raise ValueError(f"{_node_label(node)}: relu with arguments {args[1:]} {kwargs} is not supported")
        return "relu"
    if op == "call_function" and target in _FLATTENSUPPORTED or op == "call_method" and target == "flatten":
        dims = dict(zip(("start_dim", "end_dim"), args[1:]), **kwargs)
        if dims.get("start_dim", 0) != 1 or dims.get("end_dim", -1) != -1:
            raise ValueError(f"{_node_label(node)}: flatten with {dims} is not supported: minicam flattens every axis "
                             "but the first (start_dim=1, end_dim=-1)")
        return "flatten"
    if op == "call_method" and target in ("view", "reshape") or op == "call_function" and target is torch.reshape:
        shape = args[1:] if op == "call_method" else args[1]
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        if len(shape) == 2 and _is_batch_size(shape[0]) and shape[1] == -1 and not kwargs:
            return "flatten"
        raise ValueError(f"{_node_label(node)}: {target}{shape} is not supported: only the flatten "
                         "x.view(x.size(0), -1) / x.reshape(x.shape[0], -1) is (a hard-coded batch size is not)")
    if op == "call_function" and target in _ADDSUPPORTED or op == "call_method" and target in ("add", "add_"):
        tensors = [a for a in args if isinstance(a, torch.fx.Node)]
        if len(args) != 2 or len(tensors) != 2 or set(kwargs) - {"alpha"} or kwargs.get("alpha", 1) != 1:
            raise ValueError(f"{_node_label(node)}: only the addition of two tensors (a residual connection) is "
                             f"supported, got arguments {args} {kwargs}")
        if tensors[0] is tensors[1]:
            raise ValueError(f"{_node_label(node)}: adds a tensor to itself (x + x); not a residual connection")
        return "add"
    raise ValueError(f"{_node_label(node)} is not supported: minicam.interop.torch converts exactly these: {SUPPORTED}")


def _scope(node):
    """The module path (tuple) whose forward made this call, from fx's module stack."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ()
    path = list(stack)[-1]
    path = path.split("@")[0]  # fx marks a repeated call of one module with "@<n>"
    return tuple(path.split(".")) if path else ()


class _Leaf:
    def __init__(self, node, path, layer, source):
        self.node, self.path, self.layer, self.source = node, path, layer, source


class _Fork:
    def __init__(self, join, path, body, shortcut):
        self.node, self.path, self.body, self.shortcut = join, path, body, shortcut
        leaves = [p for item in body + shortcut for p in _parents(item)]
        self.where = _common_prefix(leaves) if leaves else path[:-1]


def _parents(item):
    if isinstance(item, _Leaf):
        return [item.path[:-1]]
    return [p for sub in item.body + item.shortcut for p in _parents(sub)] or [item.path[:-1]]


def _common_prefix(paths):
    first = paths[0]
    n = 0
    while n < len(first) and all(len(p) > n and p[n] == first[n] for p in paths):
        n += 1
    return first[:n]


def _numbered(paths):
    """Number the paths that occur more than once: relu -> relu1, relu2 (relu1 -> relu1_1, relu1_2)."""
    counts = {}
    for p in paths:
        counts[p] = counts.get(p, 0) + 1
    seen = {}
    out = []
    for p in paths:
        if counts[p] == 1:
            out.append(p)
            continue
        seen[p] = seen.get(p, 0) + 1
        last = p[-1]
        out.append(p[:-1] + (f"{last}_{seen[p]}" if last[-1:].isdigit() else f"{last}{seen[p]}",))
    return out


class _Graph:
    """The traced graph of ``module``, walked into a chain of leaves and forks."""

    def __init__(self, module, dtype, gen):
        try:
            traced = torch.fx.GraphModule(module, _Tracer().trace(module))
        except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError, ... on Python it cannot trace
            raise ValueError(
                f"module ({type(module).__name__}) cannot be traced by torch.fx.symbolic_trace, which from_torch needs "
                f"to read its forward: {type(err).__name__}: {err}"
            ) from err
        self.module, self.dtype, self.gen = module, dtype, gen
        nodes = list(traced.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise ValueError(f"module's forward must take exactly one tensor, got {[n.name for n in inputs]}")
        self.input = inputs[0]
        for node in nodes:
            if node.op == "get_attr":
                raise ValueError(f"{_node_label(node)}: the forward reads a parameter or buffer directly; only calls "
                                 "of supported modules are converted")
            if _is_shape_node(node):
                bad = [u for u in node.users if not (u.op in ("call_method", "call_function") and (
                    u.target in ("view", "reshape", torch.reshape) or _is_shape_node(u)))]
                if bad:
                    raise ValueError(f"{_node_label(node)}: a tensor's size is used by {_node_label(bad[0])}; sizes "
                                     "are supported only in x.view(x.size(0), -1)")
        self._names = self._name_leaves(nodes)

    def _name_leaves(self, nodes):
        """Every layer-making node -> its path (module path, or scope + function kind), numbered when repeated."""
        order, paths = [], []
        calls = {}
        for node in nodes:
            if node.op == "call_module":
                order.append(node)
                paths.append(tuple(node.target.split(".")))
                calls[node.target] = calls.get(node.target, 0) + 1
            elif node.op in ("call_function", "call_method") and not _is_shape_node(node):
                order.append(node)
                paths.append(_scope(node) + (_kind(node),))
        for target, count in calls.items():
            if count > 1 and any(True for _ in self.module.get_submodule(target).parameters()):
                raise ValueError(
                    f"module {target!r} ({type(self.module.get_submodule(target)).__name__}) has parameters and is "
                    f"called {count} times in forward: minicam's layers do not share weights (a module without "
                    "parameters, like ReLU, may be reused)"
                )
        return dict(zip(order, _numbered(paths)))

    def users(self, node):
        return [u for u in node.users if not _is_shape_node(u)]

    def leaf(self, node):
        path = self._names[node]
        if node.op == "call_module":
            mod = self.module.get_submodule(node.target)
            layer = leaf_from_torch(tuple(node.target.split(".")), mod, self.dtype, self.gen)
            source = node.target
        else:
            kind = _kind(node)
            layer = ReLU() if kind == "relu" else Flatten()
            source = node.name
        if node.op == "call_module" and (len(node.args) != 1 or node.kwargs):
            raise ValueError(f"{_node_label(node)}: a module must be called on one tensor, got {node.args} {node.kwargs}")
        return _Leaf(node, path, layer, source)

    def walk(self, value, in_branch):
        """Follow the chain from ``value`` (a node whose output is known): ``(items, last value, stop node)``."""
        items = []
        while True:
            users = self.users(value)
            if len(users) == 1:
                user = users[0]
                if user.op == "output":
                    if in_branch:
                        raise ValueError(f"{_node_label(value)}: a path that forks at a tensor reaches the output "
                                         "without being added back (only residual additions join paths)")
                    return items, value, user
                kind = None if user.op == "call_module" else _kind(user)
                if kind == "add":
                    if in_branch:
                        return items, value, user
                    raise ValueError(f"{_node_label(user)}: adds tensors that do not fork from one tensor; "
                                     "only residual connections y = body(x) + shortcut(x) are supported")
                items.append(self.leaf(user))
                value = user
            elif len(users) == 2:
                items.append(self.fork(value, users))
                value = items[-1].node
            else:
                raise ValueError(
                    f"{_node_label(value)} feeds {len(users)} consumers ({[u.name for u in users]}); minicam models "
                    "a tensor used by one layer, or by the two paths of a residual block"
                )

    def fork(self, value, users):
        ends = []
        for user in users:
            if user.op != "call_module" and _kind(user) == "add":
                ends.append(([], value, user))
            else:
                first = self.leaf(user)
                rest, last, stop = self.walk(user, in_branch=True)
                ends.append(([first] + rest, last, stop))
        joins = {stop for _, _, stop in ends}
        if len(joins) != 1:
            raise ValueError(f"{_node_label(value)} forks into two paths that end at different nodes "
                             f"({sorted(n.name for n in joins)}); they must be added back together")
        join = joins.pop()
        operands = [a for a in join.args if isinstance(a, torch.fx.Node)]
        if {ends[0][1], ends[1][1]} != set(operands):
            raise ValueError(f"{_node_label(join)} does not add the two paths that fork at {value.name!r}")
        by_operand = {last: items for items, last, _ in ends}
        first, second = by_operand[operands[0]], by_operand[operands[1]]
        body, shortcut = (second, first) if not first else (first, second)
        return _Fork(join, self._names[join], body, shortcut)

    def chain(self):
        items, _, _ = self.walk(self.input, in_branch=False)
        if not items:
            raise ValueError("module's forward computes nothing minicam can convert (its input is its output)")
        return items


# ---------------------------------------------------------------------------
# Chain of leaves and forks -> nested minicam containers named by torch path
# ---------------------------------------------------------------------------


def _under(item, prefix):
    return len(item.where) >= len(prefix) and item.where[: len(prefix)] == prefix if isinstance(item, _Fork) else (
        len(item.path) > len(prefix) and item.path[: len(prefix)] == prefix)


def _group(items, prefix, module, mapping):
    """``[(name, node)]`` for ``items``, all under the module path ``prefix``."""
    out = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, _Leaf) and len(item.path) == len(prefix) + 1:
            out.append((item.path[-1], item.layer))
            mapping[".".join(item.path)] = item.source
            i += 1
            continue
        if isinstance(item, _Fork) and item.where == prefix:
            # an addition in the middle of its module's forward: a block named after it
            name = item.path[-1]
            out.append((name, _residual(item, prefix, [], module, mapping, name)))
            i += 1
            continue
        sub = (item.where if isinstance(item, _Fork) else item.path)[: len(prefix) + 1]
        j = i + 1
        while j < len(items) and _under(items[j], sub):
            j += 1
        out.append((sub[-1], _container(items[i:j], sub, module, mapping)))
        i = j
    return out


def _torch_module(module, path):
    try:
        return module.get_submodule(".".join(path)) if path else module
    except AttributeError:
        return None


def _container(items, path, module, mapping):
    first = items[0]
    if isinstance(first, _Fork) and first.where == path and all(
            isinstance(it, _Leaf) and it.path[:-1] == path for it in items[1:]):
        return _residual(first, path, items[1:], module, mapping, None)
    mod = _torch_module(module, path)
    if mod is not None and is_gap_pair(mod) and len(items) == 2 and all(isinstance(it, _Leaf) for it in items):
        layer = GlobalAvgPool2d()  # what to_torch writes for it: round trips keep the layer
        layer.train(mod.training)
        mapping[".".join(path)] = items[1].source
        return layer
    if mod is not None:
        mapping[".".join(path)] = ".".join(path)
    return Sequential(_group(items, path, module, mapping))


def _residual(fork, path, after, module, mapping, name):
    # a block named after its addition holds its layers under that name
    prefix = path if name is None else path + (name,)
    if name is None and _torch_module(module, path) is not None:
        mapping[".".join(path)] = ".".join(path)
    body = Sequential(_group(_rebase(fork.body, path, prefix), prefix, module, mapping))
    shortcut, shortcut_name = None, "shortcut"
    if fork.shortcut:
        parts = _group(_rebase(fork.shortcut, path, prefix), prefix, module, mapping)
        if len(parts) == 1 and not isinstance(parts[0][1], Residual):
            shortcut_name, shortcut = parts[0]
        else:
            shortcut = Sequential(parts)
    after_seq = Sequential(_group(_rebase(after, path, prefix), prefix, module, mapping)) if after else None
    return Residual(body, shortcut=shortcut, after=after_seq, shortcut_name=shortcut_name)


def _rebase(items, old, new):
    """Items whose paths start with ``old``, re-rooted at ``new`` (for a block named after its addition)."""
    if old == new:
        return items
    out = []
    for item in items:
        if isinstance(item, _Leaf):
            out.append(_Leaf(item.node, new + item.path[len(old):], item.layer, item.source))
        else:
            fork = _Fork(item.node, new + item.path[len(old):], _rebase(item.body, old, new),
                         _rebase(item.shortcut, old, new))
            out.append(fork)
    return out


def _convert(module, dtype, rng):
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(module, SUPPORTED_MODULES):
        raise TypeError(f"module is a single {type(module).__name__}; from_torch converts a model: wrap it, "
                        f"nn.Sequential(module)")
    graph = _Graph(module, numpy_dtype(dtype), as_generator(rng))
    mapping = {}
    items = graph.chain()  # every layer converted, the graph's shape checked
    try:
        model = Sequential(_group(items, (), module, mapping))
    except ValueError as err:  # only the containers are built here: a clash of names
        raise ValueError(f"the torch module's names cannot all become minicam names: {err}") from err
    return model, mapping


def from_torch(module, dtype=np.float64, rng=None):
    """Any ``torch.nn.Module`` that ``torch.fx`` traces into supported operations, as a minicam model.

    Parameters
    ----------
    module : torch.nn.Module
        Its ``forward`` is traced (see the module docstring for what is
        supported: the modules of :data:`SUPPORTED_MODULES`, ``relu``,
        ``flatten``/``view(N, -1)``, and residual additions). Anything else is
        refused, naming the node or module and the option: ``TypeError`` for
        a module type, ``ValueError`` for an option, an operation or a graph
        minicam cannot model. Nothing partially built is returned.
    dtype : float64 (default) or float32
        Parameter dtype of the minicam model. float32 weights widen to float64
        exactly.
    rng : None, int or numpy.random.Generator
        Source of the Dropout layers' masks.

    Returns
    -------
    Sequential
        Same weights (copies), same running statistics, same train/eval mode
        per layer, names = torch module paths (``features.3``,
        ``layer4.1.conv2``), so :func:`minicam.interop.keys.torch_keys` gives
        the module's state-dict keys back.
    """
    return _convert(module, dtype, rng)[0]


def layer_map(module):
    """minicam layer name -> the torch module path (or traced function node) computing that layer's output.

    Parameters
    ----------
    module : torch.nn.Module
        A module :func:`from_torch` accepts.

    Returns
    -------
    dict of str -> str
        Identity for most layers (``"layer4.1.conv1"``); a reused module's
        calls map to its one path (``layer4.1.relu1`` and ``layer4.1.relu2``
        -> ``layer4.1.relu``); a function to its fx node name
        (``flatten``); a ``GlobalAvgPool2d`` pair to its Flatten's path.

    Examples
    --------
    >>> layer_map(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))   # doctest: +SKIP
    {'0': '0', '1': '1'}
    """
    return _convert(module, np.float64, 0)[1]

