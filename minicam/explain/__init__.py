"""Explanation methods: the CAM family, gradient maps, occlusion, post-processing.

Conventions shared by every method
-----------------------------------
- ``x``: a batch the model accepts, (N, C, H, W) for images.
- ``class_idx``: an int (same class for every sample), a sequence of N ints,
  or ``None`` (the predicted class of each sample).
- ``layer``: a layer name; its **output** is the feature map ``A`` (N, K, h, w).
  Default: the last layer whose output is 4-D.
- ``score``: what is explained, from the model's last output (whatever its
  last layer): ``"logit"`` (default), ``"softmax"`` or ``"log_softmax"``.
  Or ``target=``: any callable ``scores -> (value (N,), dscores)``, e.g.
  :func:`similarity_target` for an embedding network.
- One forward and one backward pass per batch: the upstream gradient has one
  row per sample, so a batch gives per-sample maps.
- The model runs in the mode it is in, and is left as it was found (see
  :func:`minicam.explain._core.untouched`). ``x`` is never modified.
- Maps are returned raw: resize with :func:`upsample`, scale with
  :func:`normalize`, explicitly.

Methods
-------
==================== ====================================================== ==============
function             map                                                    shape
==================== ====================================================== ==============
cam                  ``sum_k w^c_k A^k`` (GAP -> Linear heads only)          (N, h, w)
grad_cam             ``ReLU(sum_k mean_ij(dy/dA^k) A^k)``                    (N, h, w)
grad_cam_plus_plus   Grad-CAM++ weights (closed form, exp output)           (N, h, w)
hires_cam            ``sum_k dy/dA^k * A^k``                                 (N, h, w)
xgrad_cam            ``sum_k (sum_ij A^k dy/dA^k / sum_ij A^k) A^k``        (N, h, w)
layer_cam            ``ReLU(sum_k relu(dy/dA^k) * A^k)``                     (N, h, w)
score_cam            weights = score increase of the masked input           (N, h, w)
eigen_cam            projection on the first principal direction            (N, h, w)
saliency             ``dy/dx``                                               shape of x
guided_backprop      guided ReLU rule                                       shape of x
deconvnet            deconvnet ReLU rule                                    shape of x
guided_grad_cam      ``upsample(grad_cam) * guided_backprop``                (N, C, H, W)
occlusion            mean score drop of the windows covering each pixel     (N, H, W)
smoothgrad           mean of a method over noisy copies of x                as the method
pair_cam             Grad-CAM(++) of ``cos(f(x), reference)``: one pair      (N, h, w)
embedding_cam        weights averaged over M references, optional top-k      (N, h, w)
==================== ====================================================== ==============

Embedding networks (Chen et al. 2020): :mod:`minicam.explain.embedding`; the
weight database that explains without a backward pass: :mod:`minicam.embedding_db`.
"""

from ._core import cam_applies, layer_gradients, last_feature_layer
from .cams import (
    cam,
    combine,
    combine_elementwise,
    grad_cam,
    grad_cam_plus_plus,
    grad_cam_plus_plus_weights,
    grad_cam_weights,
    hires_cam,
    layer_cam,
    weighted_cam,
    xgrad_cam,
    xgrad_cam_weights,
)
from .embedding import average_weights, cam_from_weights, embedding_cam, pair_cam, pair_weights
from .gradient_free import eigen_cam, score_cam
from .gradients import (
    deconvnet,
    guided_backprop,
    guided_grad_cam,
    saliency,
    saliency_map,
    smoothgrad,
)
from .perturbation import occlusion
from .postprocess import INTERPOLATIONS, normalize, relu, upsample
from .targets import (
    SCORES,
    ClassScore,
    CosineSimilarity,
    class_target,
    similarity_target,
)

__all__ = [
    "INTERPOLATIONS",
    "SCORES",
    "average_weights",
    "cam_from_weights",
    "embedding_cam",
    "pair_cam",
    "pair_weights",
    "ClassScore",
    "CosineSimilarity",
    "cam",
    "cam_applies",
    "class_target",
    "combine",
    "combine_elementwise",
    "deconvnet",
    "eigen_cam",
    "grad_cam",
    "grad_cam_plus_plus",
    "grad_cam_plus_plus_weights",
    "grad_cam_weights",
    "guided_backprop",
    "guided_grad_cam",
    "hires_cam",
    "layer_cam",
    "last_feature_layer",
    "layer_gradients",
    "normalize",
    "occlusion",
    "relu",
    "saliency",
    "saliency_map",
    "score_cam",
    "similarity_target",
    "smoothgrad",
    "upsample",
    "weighted_cam",
    "xgrad_cam",
    "xgrad_cam_weights",
]
