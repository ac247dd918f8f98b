"""Metrics against scikit-learn and SciPy, the references GLUE's own evaluation uses."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from workflow_scripts.core.metrics import compute_metrics, f1, matthews_correlation


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, logits = rng.integers(0, 2, 200), rng.normal(size=(200, 2))
    predictions = logits.argmax(axis=1)
    metrics = compute_metrics(["accuracy", "f1", "matthews_correlation"], logits, labels)
    assert metrics["accuracy"] == pytest.approx(np.mean(predictions == labels))
    assert metrics["f1"] == pytest.approx(f1_score(labels, predictions))
    assert metrics["matthews_correlation"] == pytest.approx(matthews_corrcoef(labels, predictions))


def test_degenerate_predictors_score_zero_like_sklearn():
    labels, constant = np.array([0, 1, 1, 0]), np.zeros(4, dtype=int)
    assert matthews_correlation(constant, labels) == matthews_corrcoef(labels, constant) == 0.0
    assert f1(constant, labels) == 0.0


def test_regression_metrics_use_the_single_logit():
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 50)
    logits = (labels + rng.normal(scale=0.5, size=50))[:, None]
    metrics = compute_metrics(["pearson", "spearman"], logits, labels)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(logits[:, 0], labels).statistic)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(logits[:, 0], labels).statistic)
