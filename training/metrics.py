"""Metrics of the report: the study's R², CIEDE2000 colour difference, element errors.

CIEDE2000 follows Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
implementation notes, supplementary test data, and mathematical observations",
Color Res. Appl. 30(1), 2005 (equations numbered as there), with kL = kC = kH = 1;
tests check it against the paper's 34 published pairs. Colours are sRGB in 0..1
(D65), converted to CIELAB through linear RGB and XYZ (IEC 61966-2-1).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score, roc_auc_score

# sRGB (linear) -> XYZ, D65 (IEC 61966-2-1)
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)
_D65 = _SRGB_TO_XYZ.sum(axis=1)  # white point, Y = 1


def r2_rgb(truth: np.ndarray, pred: np.ndarray) -> float:
    """The study's score: coefficient of determination averaged uniformly over R, G, B."""
    return float(r2_score(np.reshape(truth, (-1, 3)), np.reshape(pred, (-1, 3)),
                          multioutput="uniform_average"))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 (..., 3) -> CIELAB (..., 3), D65. uint8 input is scaled by 1/255."""
    rgb = np.asarray(rgb)
    c = rgb / 255.0 if rgb.dtype == np.uint8 else np.clip(rgb.astype(np.float64), 0.0, 1.0)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference of CIELAB colours (..., 3), broadcast; Sharma et al. eqs 1-22."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    # (2)-(6): a' with the G correction near neutral, C', h' in degrees (0 when a' = b' = 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_bar**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where(c1p == 0, 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)
    h2p = np.where(c2p == 0, 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    # (8)-(10): differences; dh' wraps into [-180, 180], 0 if either chroma is 0
    d_l = L2 - L1
    d_c = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    # (12)-(14): means; mean hue handles the wrap and the zero-chroma case
    l_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180, hsum / 2, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2)
    )
    h_bar = np.where(c1p * c2p == 0, hsum, h_bar)
    # (15)-(21): weights and rotation term
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    cp7 = cp_bar**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    # (22)
    tl, tc, th = d_l / s_l, d_c / s_c, d_h / s_h
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def delta_e_rgb(rgb1: np.ndarray, rgb2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between two sRGB images/arrays (..., 3)."""
    return ciede2000(srgb_to_lab(rgb1), srgb_to_lab(rgb2))


def element_errors(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Relative RMSE (RMSE / mean of truth) and Pearson r for one element map."""
    t = np.asarray(truth, np.float64).ravel()
    p = np.asarray(pred, np.float64).ravel()
    rmse = float(np.sqrt(np.mean((p - t) ** 2)))
    denom = float(np.mean(np.abs(t)))
    rel = rmse / denom if denom > 0 else float("nan")
    r = float(np.corrcoef(t, p)[0, 1]) if t.std() > 0 and p.std() > 0 else float("nan")
    return {"rel_rmse": rel, "pearson_r": r, "rmse": rmse}


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` at flagging `labels` == True."""
    labels = np.asarray(labels, bool).ravel()
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores).ravel()))
