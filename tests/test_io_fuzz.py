"""Seeded fuzzing of ``minicam.io.load``: whatever the bytes, a valid model or one ValueError.

Valid model files are mutated (byte flips, truncations, ``.npy`` header
edits, JSON edits, array swaps and replacements, zip-record patches), and
each mutant is loaded from a file. The promise checked for every mutant:

- ``io.load`` returns a ``Sequential`` or raises ``ValueError`` whose message
  names the file -- never another exception type;
- it returns within :data:`SECONDS_PER_LOAD` (and a watchdog ends the whole
  test, with every thread's traceback, if a load hangs);
- its peak of traced allocations (``tracemalloc``: NumPy registers its
  arrays there, and zipfile/zlib/json allocate Python objects) stays under
  :data:`PEAK_BYTES`, although mutants declare arrays of up to 10^12 scalars
  and architecture strings of up to 10^9 characters.

:data:`MUTANTS` mutants of two files run in about 4 s on an idle 2-core
machine (8 s on a busy one); the seed is fixed, so a failure reproduces. Set
``MINICAM_FUZZ_MUTANTS`` to run more (5000 pass, in about a minute).
"""

import faulthandler
import io as stdio
import json
import os
import re
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import minicam as mc
from minicam import io, zoo
from minicam.io import ARCHITECTURE_KEY
from minicam.layers import LAYER_TYPES

from io_files import architecture, members_of, npy_bytes, patch_zip, with_architecture, zip_bytes

MUTANTS = int(os.environ.get("MINICAM_FUZZ_MUTANTS", "400"))
SEED = 20240610
PEAK_BYTES = 32 * 2**20
"""Bound on one load's peak of traced allocations (the valid files hold < 0.3 MB of weights)."""
SECONDS_PER_LOAD = 2.0
WATCHDOG_SECONDS = 120

# Values a JSON edit puts where a hyper-parameter was.
CONFIG_VALUES = [
    0, 1, -1, -10**6, 10**6, 14000, 2**31, 2**63, 10**30, 2.5, -0.0, 1e308, float("nan"), float("inf"),
    "3", "", None, True, False, [], [3], {}, {"a": 1},
]
DESCRS = ["<f4", ">f8", "<f2", "<i8", "|u1", "|b1", "<c16", "|O", "<U5", "|V8", "garbage", "[('a', '<f8')]"]


def every_layer_file(path):
    """A small valid model file using every layer type, and both containers."""
    rng = np.random.default_rng(0)
    block = mc.Residual(
        [("conv", mc.Conv2d(3, 3, 3, padding=1, bias=False, rng=rng)), ("bn", mc.BatchNorm2d(3))],
        shortcut=mc.Sequential([("0", mc.Conv2d(3, 3, 1, rng=rng))]), after=[("relu", mc.ReLU())],
        shortcut_name="downsample",
    )
    model = mc.Sequential([
        ("conv1", mc.Conv2d(2, 3, 3, padding=1, rng=rng)),
        ("bn1", mc.BatchNorm2d(3)),
        ("relu1", mc.ReLU()),
        ("layer1", mc.Sequential([("0", block)])),
        ("pool1", mc.MaxPool2d(3, stride=2, padding=1)),
        ("adaptive", mc.AdaptiveAvgPool2d((4, 3))),
        ("avg", mc.AvgPool2d(2, stride=1)),
        ("drop", mc.Dropout(0.25, rng=rng)),
        ("gap", mc.GlobalAvgPool2d()),
        ("flatten", mc.Flatten()),
        ("fc", mc.Linear(3, 2, rng=rng)),
        ("l2", mc.layers.L2Normalize()),
    ])
    model.forward(rng.standard_normal((2, 2, 6, 6)))  # moves the BatchNorm statistics
    assert {type(layer).__name__ for _, layer in model.named_layers()} == set(LAYER_TYPES)
    io.save(model, path)
    return path


# -- mutation operators: each takes (file bytes, raw members, rng) and returns file bytes --------


def flip_bytes(data, members, rng):
    out = bytearray(data)
    for i in rng.integers(0, len(out), size=rng.integers(1, 9)):
        out[i] = rng.integers(0, 256)
    return bytes(out)


def truncate(data, members, rng):
    return data[: rng.integers(0, len(data))]


def flip_stored(data, members, rng):
    # Uncompressed members: flips land in .npy headers and values (the CRC may catch them).
    return flip_bytes(zip_bytes(members, zipfile.ZIP_STORED), members, rng)


def patch_records(data, members, rng):
    options = [dict(flag_bits=1), dict(flag_bits=0x41), dict(compress_type=99), dict(compress_type=1),
               dict(compress_type=int(rng.integers(0, 2**16)))]
    return patch_zip(data, **options[rng.integers(len(options))])


def edit_json(data, members, rng):
    arch = architecture(members)
    layers = arch["layers"]
    i = int(rng.integers(len(layers)))
    spec = layers[i]
    op = rng.integers(14)
    if op <= 3 and spec["config"]:
        key = list(spec["config"])[rng.integers(len(spec["config"]))]
        spec["config"][key] = CONFIG_VALUES[rng.integers(len(CONFIG_VALUES))]
    elif op == 4 and spec["config"]:
        del spec["config"][list(spec["config"])[rng.integers(len(spec["config"]))]]
    elif op == 5:
        spec["config"]["dilation"] = 2
    elif op == 6:
        spec["type"] = [*LAYER_TYPES, "Softplus", 3, None][rng.integers(len(LAYER_TYPES) + 3)]
    elif op == 7:
        spec["name"] = [layers[0]["name"], "not an identifier", 7, "", None][rng.integers(5)]
    elif op == 8:
        del spec[["name", "type", "config"][rng.integers(3)]]
    elif op == 9:
        j = int(rng.integers(len(layers)))
        layers[i], layers[j] = layers[j], layers[i]
    elif op == 10:
        del layers[i]
    elif op == 11:
        field = ["format", "version", "layers", "metadata"][rng.integers(4)]
        arch[field] = CONFIG_VALUES[rng.integers(len(CONFIG_VALUES))]
    elif op == 12:
        arch["layers"] = layers * int(rng.choice([2, 600]))
    else:
        arch["metadata"] = {"notes": "x" * int(rng.choice([10, 2 * io.MAX_ARCHITECTURE_CHARS]))}
    text = json.dumps(arch)
    if rng.random() < 0.2:  # also break the text itself
        text = text[: rng.integers(len(text))] + ["]", "}", "[" * 100_000, "\x00", "\ud800"][rng.integers(5)]
    return zip_bytes(with_architecture(members, text))


def edit_header(data, members, rng):
    key = list(members)[rng.integers(len(members))]
    value = np.load(stdio.BytesIO(members[key]))
    shape = list(value.shape)
    descr = value.dtype.str
    fortran = False
    op = rng.integers(6)
    if op == 0 and shape:
        shape[rng.integers(len(shape))] = int(rng.choice([0, 1, -1, 7, 14000, 10**6, 10**12, 2**62]))
    elif op == 1:
        shape = shape + [int(rng.integers(1, 4))] if rng.random() < 0.5 else shape[:-1]
    elif op == 2:
        descr = DESCRS[rng.integers(len(DESCRS))]
        if key == ARCHITECTURE_KEY:
            descr = ["<U1000000000", "<U10", "<U0", "<f8"][rng.integers(4)]
    elif op == 3:
        fortran = [True, 1, "yes"][rng.integers(3)]
    elif op == 4:
        header = ["{'descr': '<f8', 'fortran_order': False}", "[1, 2]", "{'descr': '<f8', '''",
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'x': 1}", "x" * 20_000,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (3.5,)}"][rng.integers(6)]
        return zip_bytes(dict(members, **{key: npy_bytes(value, header=header)}))
    else:  # a header length field that lies
        raw = bytearray(members[key])
        raw[8:10] = int(rng.integers(0, 2**16)).to_bytes(2, "little")
        return zip_bytes(dict(members, **{key: bytes(raw)}))
    shape_text = "(" + "".join(f"{n}, " for n in shape) + ")"
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {shape_text}, }}"
    return zip_bytes(dict(members, **{key: npy_bytes(value, header=header)}))


def edit_arrays(data, members, rng):
    keys = [k for k in members if k != ARCHITECTURE_KEY]
    key = keys[rng.integers(len(keys))]
    value = np.load(stdio.BytesIO(members[key]))
    out = dict(members)
    op = rng.integers(6)
    if op == 0:  # swap two arrays
        other = keys[rng.integers(len(keys))]
        out[key], out[other] = members[other], members[key]
    elif op == 1:  # a bad value somewhere
        bad = value.astype(np.float64)  # so that 1e39 is stored as it is
        bad.flat[rng.integers(bad.size)] = rng.choice([np.nan, np.inf, -np.inf, 3e38, 1e39, -1.0, 1e300, 5e-324])
        out[key] = npy_bytes(bad)
    elif op == 2:  # another dtype or shape
        out[key] = npy_bytes([value.astype(np.float32), value.astype(np.int64), value.ravel(),
                              np.zeros(value.shape + (2,)), np.array("text"), value.astype(object)][rng.integers(6)])
    elif op == 3:
        del out[key]
    elif op == 4:
        out["extra.W"] = members[key]
    else:  # rename a member
        out[key + "x"] = out.pop(key)
    return zip_bytes(out)


OPERATORS = [flip_bytes, truncate, flip_stored, patch_records, edit_json, edit_json, edit_header, edit_header,
             edit_arrays, edit_arrays]
BYTE_OPERATORS = [flip_bytes, truncate, patch_records]  # need no parsable members


def test_fuzz_load_gives_a_model_or_one_value_error(tmp_path):
    sources = [zoo.pretrained_path("shapes-gap"), every_layer_file(tmp_path / "every.npz")]
    bases = [(open(p, "rb").read(), members_of(p)) for p in sources]
    for data, _ in bases:  # the unmutated files load
        (tmp_path / "base.npz").write_bytes(data)
        io.load(tmp_path / "base.npz")

    rng = np.random.default_rng(SEED)
    path = tmp_path / "mutant.npz"
    outcomes = {"loaded": 0}
    slowest, peak = 0.0, 0
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)  # a hang ends the run with tracebacks
    tracemalloc.start()
    try:
        for i in range(MUTANTS):
            data, members = bases[i % len(bases)]
            ops = [OPERATORS[rng.integers(len(OPERATORS))]]
            if rng.random() < 0.25:  # a quarter of the mutants get a second, byte-level, mutation
                ops.append(BYTE_OPERATORS[rng.integers(len(BYTE_OPERATORS))])
            for op in ops:
                data = op(data, members, rng)
            path.write_bytes(data)
            label = f"mutant {i} ({', '.join(op.__name__ for op in ops)})"
            tracemalloc.reset_peak()
            base_current = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # no warning escapes either
                    model = io.load(path)
            except ValueError as err:
                assert repr(str(path)) in str(err), f"{label}: the message does not name the file: {err}"
                message = str(err).replace(repr(str(path)), "")
                kind = re.sub(r"'[^']*'|\[[^]]*\]|\([^)]*\)|\{[^}]*\}|-?\d[\d.eE+-]*", "_", message)
                outcomes[kind[:32]] = outcomes.get(kind[:32], 0) + 1
            except Exception as err:  # the finding: any other type
                raise AssertionError(f"{label}: {type(err).__name__} escaped io.load: {err}") from err
            else:
                assert isinstance(model, mc.Sequential), label
                outcomes["loaded"] += 1
            elapsed = time.perf_counter() - start
            used = tracemalloc.get_traced_memory()[1] - base_current
            slowest, peak = max(slowest, elapsed), max(peak, used)
            assert elapsed < SECONDS_PER_LOAD, f"{label}: took {elapsed:.2f} s"
            assert used < PEAK_BYTES, f"{label}: peak {used / 2**20:.1f} MiB"
    finally:
        tracemalloc.stop()
        faulthandler.cancel_dump_traceback_later()
    print(f"{MUTANTS} mutants: slowest load {slowest * 1e3:.0f} ms, peak {peak / 2**20:.1f} MiB, "
          f"{len(outcomes)} outcomes:", *sorted(outcomes.items(), key=lambda kv: -kv[1]), sep="\n  ")
    # The mutations reach deep checks, not only the zip layer.
    assert len(outcomes) > 10, outcomes


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
def test_each_operator_changes_the_file(tmp_path, op):
    # Guards the fuzzer itself: an operator that returned its input would test nothing.
    data = open(zoo.pretrained_path("shapes-gap"), "rb").read()
    members = members_of(zoo.pretrained_path("shapes-gap"))
    rng = np.random.default_rng(0)
    assert sum(op(data, members, rng) != data for _ in range(5)) >= 4
