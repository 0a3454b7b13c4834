"""Diagnosing a model with Grad-CAM: failure modes, adversarial images, dataset bias, textual explanations.

Selvaraju et al. 2017 ("Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"), Sec. 6.1-6.3 and 7, each measured on minicam's
data, whose masks say where the object (and the spurious cue) really is.

- :mod:`~minicam.diagnose.failures`: the misclassified images and where the
  wrong prediction's Grad-CAM sits (object vs clutter).
- :mod:`~minicam.diagnose.attacks`: :func:`fgsm`, :func:`pgd` from minicam's own
  input gradient; :mod:`~minicam.diagnose.adversarial`: success rate per
  budget and whether the original class's Grad-CAM still finds the object.
- :mod:`~minicam.diagnose.bias`: a model that learned a coloured corner mark,
  one that did not, and Grad-CAM's energy on the cue vs the object.
- :mod:`~minicam.diagnose.concepts`: channels named by the concept they
  respond to (Network Dissection style), and :func:`explain_text`.

Every function leaves the model as it found it and never writes into its inputs.
"""

from .adversarial import attack_study
from .attacks import check_budget, fgsm, loss_input_gradient, pgd
from .bias import BIAS_MODELS, BIAS_RECIPE, CUE_MARGIN, bias_model, bias_study, cue_region, cue_vs_object, train_bias_model
from .concepts import ConceptTable, channel_concepts, channel_contributions, explain_text, pretrained_concepts
from .failures import failure_maps, failure_summary, misclassified

__all__ = [
    "BIAS_MODELS", "BIAS_RECIPE", "ConceptTable", "channel_concepts", "channel_contributions", "explain_text",
    "pretrained_concepts", "CUE_MARGIN", "attack_study", "cue_region", "bias_model", "bias_study", "check_budget", "cue_vs_object",
    "failure_maps", "failure_summary", "fgsm", "loss_input_gradient", "misclassified", "pgd", "train_bias_model",
]
