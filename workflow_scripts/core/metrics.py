"""Task metrics, as GLUE reports them: accuracy, F1 (positive class 1), Matthews correlation, Pearson/Spearman."""
from __future__ import annotations

import numpy as np


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    true_positives = np.sum((predictions == 1) & (labels == 1))
    predicted_positives, actual_positives = np.sum(predictions == 1), np.sum(labels == 1)
    if true_positives == 0:
        return 0.0
    return float(2 * true_positives / (predicted_positives + actual_positives))


def matthews_correlation(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Binary MCC; 0 when any marginal is empty (a constant predictor), as scikit-learn and GLUE do."""
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    tn = float(np.sum((predictions == 0) & (labels == 0)))
    fp = float(np.sum((predictions == 1) & (labels == 0)))
    fn = float(np.sum((predictions == 0) & (labels == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy import stats  # imported here: scipy.stats costs every stage a second of start-up

    return float(stats.pearsonr(predictions, labels).statistic)


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy import stats

    return float(stats.spearmanr(predictions, labels).statistic)


METRICS = {"accuracy": accuracy, "f1": f1, "matthews_correlation": matthews_correlation,
           "pearson": pearson, "spearman": spearman}
# Metrics that score numbers (a regression task's); the others score class ids.
REGRESSION_METRICS = ("pearson", "spearman")
# Metrics that score two classes only: class id 1 is the positive one.
BINARY_METRICS = ("f1", "matthews_correlation")


def predictions_from_logits(logits: np.ndarray) -> np.ndarray:
    """Class ids for classification (logits (N, C)), the score itself for regression (logits (N, 1))."""
    return logits[:, 0] if logits.shape[1] == 1 else logits.argmax(axis=1)


def compute_metrics(metric_names, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = predictions_from_logits(logits)
    return {name: METRICS[name](predictions, labels) for name in metric_names}
