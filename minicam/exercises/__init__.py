"""Exercise checkers: compare a student's function with minicam's reference.

The notebooks ask students to write a few functions themselves -- a ReLU
backward (three rules), a max-pool backward, a convolution forward and
backward, Grad-CAM's channel weights, the full Grad-CAM map, Guided Grad-CAM
and the counterfactual map. Each ``check_*`` function below runs the student's function
and the library's reference on several random inputs (non-square shapes,
stride 2, padding, overlapping windows, max-pool ties, exact zeros at the
ReLU kink), prints a mine-vs-reference report and returns ``True`` when every
case matches.

A failure report names the case (shapes and hyper-parameters), each output's
shape (yours and the reference's), the norm-wise relative error
(:func:`minicam.gradcheck.rel_error`) and the first differing positions with
both values, then a *diagnosis* when the answer equals a known mistake
(a missing ReLU, a sum instead of a mean, the wrong rule or sign, nearest
instead of bilinear upsampling, ...), followed by the conventions that most
often explain the difference. A function that still raises ``NotImplementedError`` is reported
as "not attempted yet", so a notebook full of stubs still runs top to bottom.

Usage in a notebook::

    def relu_backward(dout, x):
        # TODO: return dx, the gradient with respect to x
        raise NotImplementedError

    mc.exercises.check_relu_backward(relu_backward)

Every checker takes ``seed`` (the random cases; the default is the one the
notebooks use), ``raise_on_fail`` (raise :class:`ExerciseError` with the
report instead of returning ``False``: for grading scripts) and ``verbose``
(print the report; it is also returned by :func:`last_report`).

The student's function receives copies of the inputs; it must not write into
them (a minicam convention), and the report says so when it does.

Rooms: :mod:`~minicam.exercises.report` (the shared machinery),
:mod:`~minicam.exercises.layers`, :mod:`~minicam.exercises.cams`.
"""
from .cams import check_counterfactual, check_grad_cam, check_grad_cam_weights, check_guided_grad_cam
from .layers import check_conv_backward, check_conv_forward, check_maxpool_backward, check_relu_backward
from .report import TOL, ExerciseError, last_report

__all__ = [
    "ExerciseError",
    "TOL",
    "check_relu_backward",
    "check_maxpool_backward",
    "check_conv_forward",
    "check_conv_backward",
    "check_grad_cam_weights",
    "check_grad_cam",
    "check_guided_grad_cam",
    "check_counterfactual",
    "last_report",
]
