"""The checkers' shared machinery: run the cases, compare with the reference, write the report."""

import copy
import traceback

import numpy as np

from ..gradcheck import rel_error
from ..model import Sequential

__all__ = ["ExerciseError", "TOL", "last_report", "Case", "run_cases", "x_context"]

TOL = 1e-7
"""Largest accepted norm-wise relative error. A correct float64 answer is
off by rounding only (~1e-15); any real mistake is off by far more."""

_MAX_POSITIONS = 5
_last_report = ""


class ExerciseError(AssertionError):
    """Raised by a checker called with ``raise_on_fail=True`` when the answer is wrong."""


def last_report():
    """The text of the most recent checker's report (also when ``verbose=False``)."""
    return _last_report


# --------------------------------------------------------------------------
# The shared machinery: run cases, compare, report
# --------------------------------------------------------------------------


class Case:
    """One input set: a label, keyword arguments and the reference outputs."""

    def __init__(self, label, kwargs, expected, context=None, mistakes=()):
        self.label = label
        self.kwargs = kwargs
        self.expected = expected  # dict name -> ndarray, in output order
        self.context = context  # callable(output name, index) -> str, or None
        self.mistakes = mistakes  # (output name, what that mistake gives, diagnosis), tried in order


def _diagnose(case, names, results):
    """The diagnosis of the first known mistake the student's outputs reproduce, or None."""
    mine = dict(zip(names, results))
    for name, wrong, message in case.mistakes:
        try:
            value = np.asarray(mine[name], dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if value.shape == wrong.shape and np.all(np.isfinite(value)) and rel_error(value, wrong) <= TOL:
            return message
    return None


def _fmt(value):
    return f"{value: .6g}"


def _copy_args(kwargs):
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            out[key] = value.copy()
        elif isinstance(value, Sequential):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = value
    return out


def _compare(name, mine, ref, context):
    """Lines describing how ``mine`` differs from ``ref``; empty when they match."""
    lines = []
    if mine is None:
        return [f"  {name}: your function returned None for it -- did you forget a `return`?"]
    try:
        mine = np.asarray(mine, dtype=np.float64)
    except (TypeError, ValueError):
        return [f"  {name}: expected an ndarray of numbers, got {type(mine).__name__}"]
    if mine.shape != ref.shape:
        return [f"  {name}: shape mine {mine.shape} != reference {ref.shape}"]
    if not np.all(np.isfinite(mine)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(mine))[0])
        return [f"  {name}: shape {mine.shape} ok, but it contains NaN or infinity (first at {bad})"]
    err = rel_error(mine, ref)
    if err <= TOL:
        return []
    scale = max(np.abs(ref).max(), np.abs(mine).max())
    differ = np.abs(mine - ref) > TOL * scale
    positions = np.argwhere(differ)
    lines.append(f"  {name}: shape {mine.shape} ok; relative error {err:.2e} (tolerance {TOL:.0e}); "
                 f"{len(positions)} of {ref.size} entries differ")
    lines.append(f"    first differing positions{'':14s}mine     reference")
    for idx in positions[:_MAX_POSITIONS]:
        idx = tuple(int(i) for i in idx)
        extra = f"   ({context(name, idx)})" if context is not None else ""
        lines.append(f"      {str(idx):30s} {_fmt(mine[idx]):>12s} {_fmt(ref[idx]):>12s}{extra}")
    if len(positions) > _MAX_POSITIONS:
        lines.append(f"      ... and {len(positions) - _MAX_POSITIONS} more")
    return lines


def run_cases(title, student_fn, cases, hints, raise_on_fail, verbose):
    """Run every case; report the first failing one (or the success)."""
    global _last_report
    if not callable(student_fn):
        raise TypeError(f"student_fn must be a function, got {type(student_fn).__name__}")
    raise_on_fail = bool(raise_on_fail)
    outcome, lines = True, []
    worst = 0.0
    for number, case in enumerate(cases, start=1):
        args = _copy_args(case.kwargs)
        try:
            result = student_fn(**args)
        except NotImplementedError:
            outcome = False
            lines = [f"{title}: not attempted yet (your function raises NotImplementedError). "
                     "Write it, run its cell again, then run this check."]
            break
        except Exception as err:  # noqa: BLE001 - any student error is reported, not crashed on
            outcome = False
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}",
                     f"  your function raised {type(err).__name__}: {err}"]
            lines += _failure_location(err, student_fn)
            if hints:
                lines.append("  conventions to check:")
                lines += [f"    - {hint}" for hint in hints]
            break
        names = list(case.expected)
        if len(names) == 1:
            results = [result]
        elif isinstance(result, (tuple, list)) and len(result) == len(names):
            results = list(result)
        else:
            outcome = False
            got = f"a {type(result).__name__} of length {len(result)}" if isinstance(result, (tuple, list)) \
                else f"a {type(result).__name__}"
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}",
                     f"  expected a tuple ({', '.join(names)}), got {got}"]
            break
        problems = []
        for name, mine in zip(names, results):
            problems += _compare(name, mine, case.expected[name], case.context)
        modified = [key for key, value in case.kwargs.items()
                    if isinstance(value, np.ndarray) and not np.array_equal(args[key], value)]
        if problems or modified:
            outcome = False
            lines = [f"{title}: FAILED on case {number} of {len(cases)}: {case.label}"] + problems
            if modified:
                lines.append(f"  your function wrote into its argument(s) {modified}: "
                             "minicam functions never modify their inputs (work on a copy)")
            diagnosis = _diagnose(case, names, results) if problems else None
            if diagnosis:
                lines.append(f"  diagnosis: {diagnosis}")
            if hints:
                lines.append("  conventions to check:")
                lines += [f"    - {hint}" for hint in hints]
            break
        for name, mine in zip(names, results):
            worst = max(worst, rel_error(np.asarray(mine, dtype=np.float64), case.expected[name]))
    if outcome:
        lines = [f"{title}: PASSED -- all {len(cases)} cases match the reference "
                 f"(largest relative error {worst:.1e})"]
    report = "\n".join(lines)
    _last_report = report
    if verbose:
        print(report)
    if not outcome and raise_on_fail:
        raise ExerciseError(report)
    return outcome


def _failure_location(err, student_fn):
    """The line of the student's code where ``err`` was raised (not NumPy's)."""
    frames = traceback.extract_tb(err.__traceback__)[1:]  # drop the checker's own frame
    code = getattr(student_fn, "__code__", None)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename] or frames
    if not mine:
        return []
    last = mine[-1]
    return [f"  in {last.name}, line {last.lineno}" + (f": {last.line}" if last.line else "")]


def x_context(x, dout=None):
    """Context for an output shaped like ``x``: the input value there (and dout's)."""

    def context(name, idx):
        text = f"x = {x[idx]:.4g}"
        if dout is not None:
            text += f", dout = {dout[idx]:.4g}"
        return text

    return context
