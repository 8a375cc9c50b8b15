"""Classification metrics, weighted by is_real_example as run_classifier weights them.

run_classifier's metric_fn:

  predictions = tf.argmax(logits, axis=-1)
  accuracy = tf.metrics.accuracy(label_ids, predictions, weights=is_real_example)
  loss = tf.metrics.mean(per_example_loss, weights=is_real_example)

i.e. sum(w * correct) / sum(w) and sum(w * loss) / sum(w), so the padding
examples that fill the last TPU batch (is_real_example = 0) count for nothing.
Everything else here (per-class precision/recall/F1, macro-F1, Matthews
correlation, binary F1, confusion matrix) is derived from the same weighted
confusion matrix, so all metrics agree on which examples were scored.

Plain numpy, float64: the metrics of a whole split are computed once, from the
logits the evaluator collected.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

# The label id BERT's MRPC / QQP / binary tasks call positive (F1 is MRPC's metric).
POSITIVE_LABEL_ID = 1


def log_softmax(logits: np.ndarray) -> np.ndarray:
  """Numerically stable log-softmax over the last axis, float64."""
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def per_example_loss(label_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
  """run_classifier's loss: -sum(one_hot(label) * log_softmax(logits)), [batch]."""
  label_ids = np.asarray(label_ids, np.int64)
  return -np.take_along_axis(log_softmax(logits), label_ids[:, None], axis=-1)[:, 0]


def confusion_matrix(label_ids: np.ndarray, predictions: np.ndarray, num_labels: int,
                     weights: Optional[np.ndarray] = None) -> np.ndarray:
  """Weighted counts: [true label, predicted label], float64 [n, n]."""
  label_ids = np.asarray(label_ids, np.int64)
  predictions = np.asarray(predictions, np.int64)
  weights = np.ones(len(label_ids)) if weights is None else np.asarray(weights, np.float64)
  matrix = np.zeros((num_labels, num_labels), np.float64)
  np.add.at(matrix, (label_ids, predictions), weights)
  return matrix


def matthews_corrcoef(matrix: np.ndarray) -> float:
  """Matthews correlation (CoLA's metric) of a confusion matrix, multi-class (Gorodkin's R_K).

  Zero when undefined (all predictions or all labels in one class), as scikit-learn does.
  """
  matrix = np.asarray(matrix, np.float64)
  total = matrix.sum()
  correct = np.trace(matrix)
  true_counts = matrix.sum(axis=1)
  pred_counts = matrix.sum(axis=0)
  cov_xy = correct * total - pred_counts @ true_counts
  cov_xx = total * total - pred_counts @ pred_counts
  cov_yy = total * total - true_counts @ true_counts
  if cov_xx == 0 or cov_yy == 0:
    return 0.0
  return float(cov_xy / np.sqrt(cov_xx * cov_yy))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  num = np.asarray(num, np.float64)
  den = np.asarray(den, np.float64)
  return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def classification_metrics(label_ids: np.ndarray, logits: np.ndarray,
                           is_real_example: Optional[np.ndarray] = None,
                           label_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Every metric of a split, as one JSON-ready dict.

  Args:
    label_ids: int [n]. Gold label ids.
    logits: float [n, num_labels]. Classifier logits (log-probabilities work
      too: argmax and log-softmax are unchanged by them).
    is_real_example: [n] weights, 1 for real and 0 for padding examples;
      all ones when None.
    label_names: list of str. Names of the label ids (defaults to "0", "1", ...).
  Returns:
    {eval_accuracy, eval_loss, num_examples, precision/recall/f1 per class
    (keyed by label name), macro_f1, matthews_corrcoef, binary_f1 (positive
    class = label id 1; None unless there are exactly two labels),
    confusion_matrix (rows true, columns predicted), labels}.
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f"logits must be [examples, labels], got shape {logits.shape}")
  num_labels = logits.shape[1]
  label_ids = np.asarray(label_ids, np.int64).reshape(-1)
  if label_ids.shape[0] != logits.shape[0]:
    raise ValueError(f"{label_ids.shape[0]} labels but {logits.shape[0]} rows of logits")
  if label_ids.size and (label_ids.min() < 0 or label_ids.max() >= num_labels):
    raise ValueError(f"label ids must be in [0, {num_labels}); got {label_ids.min()}..{label_ids.max()}")
  weights = (np.ones(label_ids.shape[0]) if is_real_example is None
             else np.asarray(is_real_example, np.float64).reshape(-1))
  names = [str(i) for i in range(num_labels)] if label_names is None else list(label_names)
  if len(names) != num_labels:
    raise ValueError(f"{len(names)} label names for {num_labels} logits per example")

  predictions = np.argmax(logits, axis=-1)
  total_weight = weights.sum()
  losses = per_example_loss(label_ids, logits)
  matrix = confusion_matrix(label_ids, predictions, num_labels, weights)
  true_counts = matrix.sum(axis=1)
  pred_counts = matrix.sum(axis=0)
  hits = np.diag(matrix)
  precision = _safe_div(hits, pred_counts)
  recall = _safe_div(hits, true_counts)
  f1 = _safe_div(2 * precision * recall, precision + recall)
  metrics: Dict[str, Any] = {
      # tf.metrics.accuracy / mean with weights; 0 for an empty split.
      "eval_accuracy": float(_safe_div((predictions == label_ids) @ weights, total_weight)),
      "eval_loss": float(_safe_div(losses @ weights, total_weight)),
      "num_examples": int(np.count_nonzero(weights)),
      "labels": names,
      "precision": {n: float(v) for n, v in zip(names, precision)},
      "recall": {n: float(v) for n, v in zip(names, recall)},
      "f1": {n: float(v) for n, v in zip(names, f1)},
      "support": {n: float(v) for n, v in zip(names, true_counts)},
      "macro_f1": float(f1.mean()),
      "matthews_corrcoef": matthews_corrcoef(matrix),
      "binary_f1": float(f1[POSITIVE_LABEL_ID]) if num_labels == 2 else None,
      "confusion_matrix": [[int(round(v)) if float(v).is_integer() else float(v) for v in row]
                           for row in matrix],
  }
  if num_labels == 2:
    positive_probability = np.exp(log_softmax(logits))[:, POSITIVE_LABEL_ID]
    real = weights > 0
    metrics["roc_curve"] = roc_curve(label_ids[real], positive_probability[real], weights[real])
    metrics["pr_curve"] = precision_recall_curve(label_ids[real], positive_probability[real],
                                                 weights[real])
  return metrics


def roc_curve(label_ids: np.ndarray, scores: np.ndarray,
              weights: Optional[np.ndarray] = None) -> Dict[str, List[float]]:
  """The ROC curve of a binary task, one point per distinct score (highest first).

  Args:
    label_ids: int [n]; the positive class is label id 1 (POSITIVE_LABEL_ID).
    scores: float [n]; the positive class's probability.
    weights: [n], 1 for real and 0 for padding examples; all ones when None.
  Returns:
    {"thresholds", "fpr", "tpr"}: at point i every example scoring >= thresholds[i]
    is called positive. With no positive or no negative example, the rates
    whose denominator is 0 are 0.
  """
  scores = np.asarray(scores, np.float64).reshape(-1)
  positive = (np.asarray(label_ids).reshape(-1) == POSITIVE_LABEL_ID).astype(np.float64)
  weights = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64).reshape(-1)
  order = np.argsort(-scores, kind="stable")
  scores, positive, weights = scores[order], positive[order], weights[order]
  true_pos = np.cumsum(positive * weights)
  false_pos = np.cumsum((1 - positive) * weights)
  # The last index of each run of equal scores: ties are called positive together.
  if not scores.size:
    return {"thresholds": [], "fpr": [], "tpr": []}
  last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
  return {"thresholds": scores[last].tolist(),
          "fpr": _safe_div(false_pos[last], false_pos[-1]).tolist(),
          "tpr": _safe_div(true_pos[last], true_pos[-1]).tolist()}


def _weight_at_or_above(scores: np.ndarray, values: np.ndarray,
                        thresholds: np.ndarray) -> np.ndarray:
  """For each threshold, the sum of `values` over the examples scoring at or above it."""
  order = np.argsort(scores, kind="stable")
  from_top = np.r_[np.cumsum(values[order][::-1])[::-1], 0.0]  # sum over sorted[i:]
  return from_top[np.searchsorted(scores[order], thresholds, side="left")]


def precision_recall_curve(label_ids: np.ndarray, scores: np.ndarray,
                           weights: Optional[np.ndarray] = None) -> Dict[str, List[float]]:
  """The precision-recall curve of a binary task, at the same points as roc_curve.

  Returns:
    {"thresholds", "precision", "recall"}: at point i every example scoring >=
    thresholds[i] is called positive; recall is roc_curve's tpr. Precision is
    1 where nothing is called positive yet (never: the first point calls the
    top score positive), and recall 0 when there is no positive example.
  """
  roc = roc_curve(label_ids, scores, weights)
  scores = np.asarray(scores, np.float64).reshape(-1)
  positive = (np.asarray(label_ids).reshape(-1) == POSITIVE_LABEL_ID).astype(np.float64)
  weights = np.ones_like(scores) if weights is None else np.asarray(weights, np.float64).reshape(-1)
  thresholds = np.asarray(roc["thresholds"])
  called = _weight_at_or_above(scores, weights, thresholds)
  hits = _weight_at_or_above(scores, positive * weights, thresholds)
  return {"thresholds": roc["thresholds"],
          "precision": np.where(called > 0, _safe_div(hits, called), 1.0).tolist(),
          "recall": roc["tpr"]}


# --- multi-label ----------------------------------------------------------------------------

def sigmoid(logits: np.ndarray) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  return np.exp(-np.logaddexp(0.0, -logits))


def sigmoid_loss(label_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
  """Binary cross-entropy of each label's sigmoid, averaged over the labels: [n]
  (model/modeling.py's per_example_sigmoid_loss, float64)."""
  logits = np.asarray(logits, np.float64)
  y = np.asarray(label_ids, np.float64)
  return (np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))).mean(axis=-1)


def best_f1_thresholds(label_ids: np.ndarray, probabilities: np.ndarray) -> List[float]:
  """Each label's decision threshold that maximises its F1 on these examples.

  A threshold t calls every example with probability >= t positive; the candidates are the
  label's own probabilities, and of equally good ones the midpoint to the next lower
  probability is taken (a margin on either side). A label without a positive example keeps 0.5.
  """
  y = np.asarray(label_ids, np.int64)
  p = np.asarray(probabilities, np.float64)
  out = []
  for k in range(y.shape[1]):
    positives = y[:, k].sum()
    if positives == 0:
      out.append(0.5)
      continue
    order = np.argsort(-p[:, k], kind="stable")
    scores, hits = p[order, k], y[order, k]
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]  # the end of each tie run
    tp = np.cumsum(hits)[last]
    called = last + 1
    f1 = 2 * tp / (called + positives)
    best = int(np.argmax(f1))
    below = scores[last[best] + 1] if last[best] + 1 < scores.size else 0.0
    out.append(float((scores[last[best]] + below) / 2))
  return out


def multilabel_metrics(label_ids: np.ndarray, logits: np.ndarray, thresholds: Sequence[float],
                       is_real_example: Optional[np.ndarray] = None,
                       label_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Every metric of a multi-label split, as one JSON-ready dict (checked against
  scikit-learn's in tests/evaluator/test_metrics.py).

  Args:
    label_ids: int [n, num_labels], multi-hot.
    logits: float [n, num_labels]: each label's sigmoid logit.
    thresholds: each label's decision threshold on its probability (>= calls it).
    is_real_example: [n], 1 for real and 0 for padding examples (padding is left out).
    label_names: names of the labels.
  Returns:
    {eval_accuracy (subset accuracy: every label right), subset_accuracy, hamming_loss,
    eval_loss (mean binary cross-entropy), micro_f1, macro_f1, micro/macro precision and
    recall, macro_roc_auc (over the labels it is defined for), per label precision, recall,
    f1, support, roc_auc (None without both classes) and threshold, num_examples, labels}.
  """
  y = np.asarray(label_ids, np.int64)
  logits = np.asarray(logits, np.float64)
  if y.shape != logits.shape or y.ndim != 2:
    raise ValueError(f"multi-hot labels {y.shape} and logits {logits.shape} must both be "
                     "[examples, labels]")
  real = (np.ones(len(y), bool) if is_real_example is None
          else np.asarray(is_real_example).reshape(-1) > 0)
  y, logits = y[real], logits[real]
  names = [str(i) for i in range(y.shape[1])] if label_names is None else list(label_names)
  probabilities = sigmoid(logits)
  predicted = (probabilities >= np.asarray(thresholds, np.float64)[None, :]).astype(np.int64)
  tp = (predicted * y).sum(axis=0).astype(np.float64)
  called = predicted.sum(axis=0).astype(np.float64)
  support = y.sum(axis=0).astype(np.float64)
  precision, recall = _safe_div(tp, called), _safe_div(tp, support)
  f1 = _safe_div(2 * tp, called + support)
  micro_p, micro_r = _safe_div(tp.sum(), called.sum()), _safe_div(tp.sum(), support.sum())
  aucs = [_roc_auc(y[:, k], probabilities[:, k]) for k in range(y.shape[1])]
  defined = [a for a in aucs if a is not None]
  subset = float((predicted == y).all(axis=1).mean()) if len(y) else 0.0
  return {
      "eval_accuracy": subset, "subset_accuracy": subset,
      "hamming_loss": float((predicted != y).mean()) if len(y) else 0.0,
      "eval_loss": float(sigmoid_loss(y, logits).mean()) if len(y) else 0.0,
      "micro_f1": float(_safe_div(2 * tp.sum(), called.sum() + support.sum())),
      "macro_f1": float(f1.mean()),
      "micro_precision": float(micro_p), "micro_recall": float(micro_r),
      "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
      "macro_roc_auc": float(np.mean(defined)) if defined else None,
      "num_examples": int(len(y)), "labels": names, "multi_label": True,
      "precision": dict(zip(names, map(float, precision))),
      "recall": dict(zip(names, map(float, recall))),
      "f1": dict(zip(names, map(float, f1))),
      "support": dict(zip(names, map(float, support))),
      "roc_auc": dict(zip(names, aucs)),
      "thresholds": dict(zip(names, map(float, thresholds))),
  }


def _roc_auc(y: np.ndarray, scores: np.ndarray) -> Optional[float]:
  """Area under the ROC curve (ties counted half, as scikit-learn's); None with one class."""
  positives, negatives = y.sum(), len(y) - y.sum()
  if positives == 0 or negatives == 0:
    return None
  ranks = _average_ranks(scores)
  return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks, ties sharing their average rank (Mann-Whitney's)."""
  order = np.argsort(values, kind="stable")
  ranks = np.empty(len(values), np.float64)
  sorted_values = values[order]
  starts = np.r_[0, np.nonzero(np.diff(sorted_values))[0] + 1]
  ends = np.r_[starts[1:], len(values)]
  for start, end in zip(starts, ends):
    ranks[order[start:end]] = (start + end + 1) / 2
  return ranks


# Metrics a threshold or a baseline comparison can name, and whether higher is better.
SCALAR_METRICS = {
    "eval_accuracy": True,
    "eval_loss": False,
    "macro_f1": True,
    "matthews_corrcoef": True,
    "binary_f1": True,
    # multi-label tasks'
    "micro_f1": True,
    "subset_accuracy": True,
    "hamming_loss": False,
    "macro_roc_auc": True,
}
