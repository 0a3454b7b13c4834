"""Command line: ``python -m minicam <command>``; ``--help`` lists the commands."""

import argparse
import sys
import time

import numpy as np


def _cmd_gradcheck(args):
    from . import gradcheck as gc

    rows = []  # (what, quantity, error, tolerance)
    t0 = time.perf_counter()
    for label, layer, x in gc.layer_cases(seed=args.seed):
        for quantity, err in gc.check_layer(layer, x, rng=args.seed).items():
            rows.append((label, "d" + quantity, err, gc.LAYER_TOL))
    rng = np.random.default_rng(args.seed)
    x = gc.kink_free_input((2, 3, 5, 4), rng)
    dout = rng.standard_normal(x.shape)
    for mode, err in gc.relu_rule_errors(x, dout).items():
        # A rule is exact elementwise arithmetic: any difference is a bug.
        rows.append((f"ReLU backward rule, mode={mode!r}", "max |dx - rule|", err, 0.0))
    for label, model, xm, ym in gc.model_cases(seed=args.seed):
        errors = gc.check_model(model, xm, ym)
        worst = max(errors, key=errors.get)
        rows.append((label, f"all {len(errors)} tensors (worst: d{worst})", errors[worst], gc.MODEL_TOL))
    elapsed = time.perf_counter() - t0

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    header = f"{'check':<{w0}}  {'quantity':<{w1}}  {'error':>10}  {'limit':>7}  result"
    print(header)
    print("-" * len(header))
    failures = 0
    for what, quantity, err, tol in rows:
        ok = err <= tol
        failures += not ok
        print(f"{what:<{w0}}  {quantity:<{w1}}  {err:10.2e}  {tol:7.0e}  {'PASS' if ok else 'FAIL'}")
    print("-" * len(header))
    print(
        f"{len(rows) - failures} passed, {failures} failed  "
        f"(central differences, h=1e-5, float64, random upstream gradients; {elapsed:.1f} s)"
    )
    return 1 if failures else 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minicam",
        description="minicam: a pure-NumPy reference for class activation maps.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.required = True

    # One line per command; each _add_<command> function lives below.
    _add_gradcheck(sub)
    return parser


def _add_gradcheck(sub):
    p = sub.add_parser(
        "gradcheck",
        help="check every layer's backward (and every ReLU mode) against central differences",
        description="Check every layer's backward pass, every ReLU backward rule and three small "
        "whole models against central differences in float64; exit 1 on any failure.",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the random inputs and weights (default 0)")
    p.set_defaults(func=_cmd_gradcheck)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
