"""Calibrated confidence: a logistic model over retrieval features, fitted on labels.

The label of a query is 1 when the top hit is an article that answers it, 0 otherwise
(including every question the knowledge base cannot answer). The fitted weights live in
``kb/eval/calibration.json``; ``casestream kb eval --fit`` refits them.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Features of a retrieval, in the model's order (see ``kb.retrieve.confidence_features``).
FEATURES = ("vector_top", "vector_margin", "bm25_coverage", "fused_margin")
DEFAULT_PATH = Path(__file__).resolve().parent / "eval" / "calibration.json"


@dataclass(frozen=True, slots=True)
class Calibration:
    """``p = sigmoid(bias + sum(w_i * (x_i - mean_i) / scale_i))``."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    features: tuple[str, ...] = FEATURES
    fitted_on: int = 0

    def confidence(self, x: tuple[float, ...]) -> float:
        z = self.bias + sum(
            w * (v - m) / s
            for w, v, m, s in zip(self.weights, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def save(self, path: Path = DEFAULT_PATH) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Calibration:
        """The fitted calibration, or :data:`UNFITTED` if there is none yet."""
        if not path.is_file():
            return UNFITTED
        data = json.loads(path.read_text("utf-8"))
        if tuple(data["features"]) != FEATURES:
            return UNFITTED
        return cls(
            weights=tuple(data["weights"]),
            bias=float(data["bias"]),
            mean=tuple(data["mean"]),
            scale=tuple(data["scale"]),
            features=tuple(data["features"]),
            fitted_on=int(data["fitted_on"]),
        )


#: A hand-set prior used before any fit: confidence follows the top cosine.
UNFITTED = Calibration(
    weights=(4.0, 1.0, 1.0, 1.0), bias=0.0, mean=(0.5, 0.1, 0.5, 0.1), scale=(0.5, 0.1, 0.5, 0.1)
)


def fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], l2: float = 1.0, steps: int = 50
) -> Calibration:
    """Logistic regression by Newton's method with an L2 penalty (not on the bias)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -40, 40)))
        grad = z.T @ (p - y) + penalty @ w
        hess = (z.T * (p * (1 - p))) @ z + penalty + np.eye(len(w)) * 1e-9
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return Calibration(
        weights=tuple(float(v) for v in w[1:]),
        bias=float(w[0]),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        fitted_on=len(x),
    )


def expected_calibration_error(
    confidence: npt.NDArray[np.float64], correct: npt.NDArray[np.float64], bins: int = 10
) -> float:
    """ECE: the bin-weighted gap between mean confidence and accuracy (equal-width bins)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(float(confidence[mask].mean()) - float(correct[mask].mean()))
    return float(total)
