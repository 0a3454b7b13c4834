"""Grad-CAM on adversarial images (Selvaraju et al. 2017, Sec. 6.2), measured.

The paper's claim: after an imperceptible attack changes the prediction,
Grad-CAM of the *original* class still localizes the object, so the
explanation is robust where the classifier is not. :func:`attack_study`
measures it on images with masks: for each budget, the attack's success rate
on the images the model got right, and, on the successfully attacked ones,
how often the original class's Grad-CAM still points at the object (pointing
game, energy in the mask) compared with the same images before the attack.
"""

import numpy as np

from ..explain.cams import grad_cam
from ..explain.postprocess import upsample
from ..metrics.localization import energy_in_mask, pointing_game
from ..train import predict
from .attacks import check_budget, fgsm, pgd
from .failures import _check_dataset

__all__ = ["ATTACKS", "attack_study"]

ATTACKS = ("fgsm", "pgd")


def _localizes(model, images, class_idx, masks, layer):
    maps = upsample(grad_cam(model, images, class_idx, layer=layer), images.shape[2:])
    hits, _ = pointing_game(maps, masks)
    energy, _ = energy_in_mask(maps, masks)
    return hits, energy


def attack_study(model, ds, budgets, attack="fgsm", n_steps=10, layer=None):
    """Attack success per budget, and whether the original class's Grad-CAM still finds the object.

    Parameters
    ----------
    model : Sequential
        Left untouched.
    ds : Dataset
        Single-object images in [0, 1] with masks; only the images the model
        classifies correctly are attacked.
    budgets : sequence of float >= 0
        L-infinity budgets ``eps``.
    attack : {"fgsm", "pgd"}
        ``"pgd"`` runs ``n_steps`` steps of size ``2.5 eps / n_steps`` from
        ``x`` (no random start; Madry et al.'s step rule).
    n_steps : int
        PGD's steps.
    layer : str, optional
        Grad-CAM's layer.

    Returns
    -------
    list of dict, one per budget
        ``eps``; ``attacked`` (images classified right before, attacked);
        ``success`` (share now misclassified); on the successfully attacked
        images (``n_fooled``): ``pointing_clean`` / ``pointing_adv`` (share
        of true-class Grad-CAM peaks on the object before / after the
        attack), ``energy_clean`` / ``energy_adv`` (mean share of its mass
        on the object), and ``pointing_adv_predicted`` (the same for the
        class the attack made the model predict). NaN when no image was fooled.
    """
    _check_dataset(ds)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise TypeError(f"budgets must be a sequence of numbers, got {budgets!r}")
    budgets = [check_budget(eps, f"budgets[{i}]") for i, eps in enumerate(budgets)]
    pred = predict(model, ds.images)
    right = np.flatnonzero(pred == ds.labels)
    x, labels, masks = ds.images[right], ds.labels[right], ds.masks[right]
    clean_hits, clean_energy = _localizes(model, x, labels, masks, layer)
    rows = []
    for eps in budgets:
        if attack == "fgsm":
            adv = fgsm(model, x, labels, eps)
        else:
            adv = pgd(model, x, labels, eps, step=max(2.5 * eps / n_steps, 1e-12), n_steps=n_steps)
        adv_pred = predict(model, adv)
        fooled = np.flatnonzero(adv_pred != labels)
        row = {"eps": eps, "attacked": int(len(right)), "success": float(len(fooled) / max(len(right), 1)),
               "n_fooled": int(len(fooled))}
        if fooled.size:
            hits, energy = _localizes(model, adv[fooled], labels[fooled], masks[fooled], layer)
            pred_hits, _ = _localizes(model, adv[fooled], adv_pred[fooled], masks[fooled], layer)
            row.update(pointing_clean=float(clean_hits[fooled].mean()), pointing_adv=float(hits.mean()),
                       energy_clean=float(clean_energy[fooled].mean()), energy_adv=float(energy.mean()),
                       pointing_adv_predicted=float(pred_hits.mean()))
        else:
            row.update({k: float("nan") for k in ("pointing_clean", "pointing_adv", "energy_clean", "energy_adv",
                                                  "pointing_adv_predicted")})
        rows.append(row)
    return rows
