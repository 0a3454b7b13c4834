"""Stateless kernels: padding, im2col/col2im, convolution and pooling.

Three rooms: :mod:`~minicam.functional.padding` (output sizes, padding,
sliding windows), :mod:`~minicam.functional.conv` (im2col/col2im,
unfold/fold, convolution) and :mod:`~minicam.functional.pool` (max, average
and adaptive average pooling); this package re-exports all of them.

Every operation comes twice: a *naive* loop version that reads like the
textbook definition (what a student should read first), and a *fast*
vectorized version used by the layers. The tests check that the two agree
to rounding error, and that both agree with finite differences.

How the fast kernels spend their time (see ``benchmarks/README.md``): a
convolution is one BLAS matrix product per direction over the unfolded input
(:func:`unfold`), whose copies and adds are whole strided slabs, one per
kernel offset (never one per output position), done a cache-sized block of
samples at a time (``conv.BLOCK_BYTES``); for stride 1 the gradient of the
input is folded over "wide rows" (:func:`fold_wide`); pooling works on the
``KH*KW`` strided views of ``x`` (one per offset inside the window), so no
window is ever copied. Nothing here writes into its arguments (but for an
``out=`` array passed for that purpose), and every result keeps the dtype of
its input.

Conventions (see ``minicam.__init__``): arrays are NCHW, convolution is
cross-correlation (no kernel flip) with zero padding, pooling uses floor
mode (leftover rows/columns are dropped), max-pool pads with ``-inf`` (a
padded position never wins) and its ties send the gradient to the first
maximum of the window in row-major order.

Output size of a convolution or pooling window along one axis::

    out = (size + 2 * padding - kernel_size) // stride + 1
"""

from .conv import (
    col2im,
    conv2d_backward,
    conv2d_backward_input,
    conv2d_backward_naive,
    conv2d_forward,
    conv2d_forward_naive,
    fold,
    fold_wide,
    im2col,
    unfold,
)
from .padding import (
    output_size,
    pad2d,
    unpad2d,
    windows,
)
from .pool import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_backward_naive,
    adaptive_avg_pool2d_forward,
    adaptive_avg_pool2d_forward_naive,
    adaptive_windows,
    avg_pool2d_backward,
    avg_pool2d_forward,
    check_max_pool_padding,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_backward_naive,
    max_pool2d_forward,
    max_pool2d_forward_naive,
)

__all__ = [
    "output_size",
    "pad2d",
    "unpad2d",
    "windows",
    "im2col",
    "col2im",
    "unfold",
    "fold",
    "fold_wide",
    "conv2d_forward_naive",
    "conv2d_backward_naive",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_backward_input",
    "check_max_pool_padding",
    "max_pool2d_forward_naive",
    "max_pool2d_backward_naive",
    "max_pool2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "adaptive_windows",
    "adaptive_avg_pool2d_forward_naive",
    "adaptive_avg_pool2d_backward_naive",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
]
