"""Metrics against hand-computed cases and independent references.

The references: TF1's own tf.compat.v1.metrics.accuracy / mean (the very ops
run_classifier's metric_fn calls), streamed batch by batch as the Estimator
did, and plain-Python loops over examples for the confusion-matrix metrics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as sk  # the multi-label reference (test extra): absent, the tests fail
import tensorflow as tf

from bertline.evaluator import metrics


def _tf1_metric_fn(batches):
  """run_classifier's metric_fn, run over batches in a TF1 graph and session."""
  graph = tf.Graph()
  with graph.as_default():
    labels = tf.compat.v1.placeholder(tf.int32, [None])
    logits = tf.compat.v1.placeholder(tf.float32, [None, None])
    weights = tf.compat.v1.placeholder(tf.float32, [None])
    # run_classifier.create_model's loss, verbatim.
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    one_hot = tf.one_hot(labels, depth=tf.shape(logits)[1], dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    accuracy, acc_update = tf.compat.v1.metrics.accuracy(
        labels=labels, predictions=predictions, weights=weights)
    loss, loss_update = tf.compat.v1.metrics.mean(values=per_example_loss, weights=weights)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.local_variables_initializer())
      for l, g, w in batches:
        sess.run([acc_update, loss_update], {labels: l, logits: g, weights: w})
      return sess.run([accuracy, loss])


def _python_reference(label_ids, predictions, num_labels):
  """Per-class precision/recall/F1 and MCC by counting, one example at a time."""
  tp = [0] * num_labels
  fp = [0] * num_labels
  fn = [0] * num_labels
  for y, p in zip(label_ids, predictions):
    if y == p:
      tp[y] += 1
    else:
      fp[p] += 1
      fn[y] += 1
  prec = [tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else 0.0 for k in range(num_labels)]
  rec = [tp[k] / (tp[k] + fn[k]) if tp[k] + fn[k] else 0.0 for k in range(num_labels)]
  f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(prec, rec)]
  # MCC as the Pearson correlation of the one-hot label and prediction
  # matrices (Gorodkin 2004), computed from its definition.
  n = len(label_ids)
  y = np.eye(num_labels)[label_ids]
  x = np.eye(num_labels)[predictions]
  yc, xc = y - y.mean(0), x - x.mean(0)
  cov = lambda a, b: float((a * b).sum()) / n
  den = math.sqrt(cov(xc, xc) * cov(yc, yc))
  mcc = cov(xc, yc) / den if den else 0.0
  return prec, rec, f1, mcc


def test_hand_computed_binary_case():
  # 6 real examples + 2 padding ones that must not count.
  labels = [1, 1, 1, 0, 0, 0, 1, 0]
  preds = [1, 1, 0, 0, 1, 0, 0, 0]
  real = [1, 1, 1, 1, 1, 1, 0, 0]
  logits = np.eye(2)[preds] * 2.0  # softmax prob of the predicted class: e^2 / (e^2 + 1)
  m = metrics.classification_metrics(labels, logits, real, ["no", "yes"])
  # TP=2 (yes), FN=1, FP=1, TN=2.
  assert m["num_examples"] == 6
  assert m["eval_accuracy"] == pytest.approx(4 / 6)
  p_right = math.exp(2) / (math.exp(2) + 1)
  assert m["eval_loss"] == pytest.approx((4 * -math.log(p_right) + 2 * -math.log(1 - p_right)) / 6)
  assert m["confusion_matrix"] == [[2, 1], [1, 2]]
  assert m["precision"] == {"no": pytest.approx(2 / 3), "yes": pytest.approx(2 / 3)}
  assert m["binary_f1"] == pytest.approx(2 / 3)
  # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / 9.
  assert m["matthews_corrcoef"] == pytest.approx(3 / 9)
  assert m["support"] == {"no": 3.0, "yes": 3.0}


def test_degenerate_cases_are_zero_not_nan():
  m = metrics.classification_metrics([0, 1, 2], np.tile([5.0, 0.0, 0.0], (3, 1)))
  assert m["matthews_corrcoef"] == 0.0  # all predictions in one class
  assert m["precision"] == {"0": pytest.approx(1 / 3), "1": 0.0, "2": 0.0}
  assert m["binary_f1"] is None  # three labels: MRPC's F1 does not apply
  empty = metrics.classification_metrics([0, 1], np.zeros((2, 2)), [0, 0])
  assert empty["num_examples"] == 0 and empty["eval_accuracy"] == 0.0


@pytest.mark.parametrize("num_labels", [2, 3, 5])
def test_random_data_matches_tf1_metric_fn_and_counting(num_labels):
  rng = np.random.default_rng(num_labels)
  n, batch = 203, 32
  labels = rng.integers(0, num_labels, n)
  logits = rng.normal(size=(n, num_labels)) * 3 + np.eye(num_labels)[labels] * 1.5
  # The last batch padded the way run_classifier pads for TPUs.
  pad = (-n) % batch
  labels_p = np.concatenate([labels, np.zeros(pad, np.int64)])
  logits_p = np.concatenate([logits, rng.normal(size=(pad, num_labels))])
  real = np.concatenate([np.ones(n), np.zeros(pad)])
  m = metrics.classification_metrics(labels_p, logits_p, real)

  batches = [(labels_p[i:i + batch], logits_p[i:i + batch], real[i:i + batch])
             for i in range(0, len(labels_p), batch)]
  tf_acc, tf_loss = _tf1_metric_fn(batches)
  assert m["eval_accuracy"] == pytest.approx(tf_acc, abs=1e-6)
  assert m["eval_loss"] == pytest.approx(tf_loss, rel=1e-5)
  assert m["num_examples"] == n

  preds = logits.argmax(-1)
  prec, rec, f1, mcc = _python_reference(labels.tolist(), preds.tolist(), num_labels)
  names = [str(k) for k in range(num_labels)]
  assert [m["precision"][k] for k in names] == pytest.approx(prec)
  assert [m["recall"][k] for k in names] == pytest.approx(rec)
  assert [m["f1"][k] for k in names] == pytest.approx(f1)
  assert m["macro_f1"] == pytest.approx(sum(f1) / num_labels)
  assert m["matthews_corrcoef"] == pytest.approx(mcc)
  matrix = np.array(m["confusion_matrix"])
  assert matrix.sum() == n and np.trace(matrix) == (preds == labels).sum()
  assert all(matrix[y, p] >= 1 for y, p in zip(labels, preds))
  if num_labels == 2:
    assert m["binary_f1"] == pytest.approx(f1[1])


def test_probabilities_give_the_same_metrics_as_logits():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 3))
  labels = rng.integers(0, 3, 50)
  probs = np.exp(metrics.log_softmax(logits))
  a = metrics.classification_metrics(labels, logits)
  b = metrics.classification_metrics(labels, np.log(probs))
  for key in ("eval_accuracy", "eval_loss", "macro_f1", "matthews_corrcoef"):
    assert a[key] == pytest.approx(b[key], rel=1e-9)


def test_bad_shapes_are_clear_errors():
  with pytest.raises(ValueError, match="label ids must be in"):
    metrics.classification_metrics([3], np.zeros((1, 2)))
  with pytest.raises(ValueError, match="2 labels but 1 rows"):
    metrics.classification_metrics([0, 1], np.zeros((1, 2)))


def test_roc_curve_matches_counting_at_every_threshold_and_its_area_the_rank_statistic():
  rng = np.random.default_rng(7)
  labels = rng.integers(0, 2, 300)
  logits = np.stack([np.zeros(300), labels * 1.5 + rng.normal(size=300)], axis=1)
  logits[::7, 1] = 0.25  # ties: called positive together
  real = np.ones(300)
  real[-20:] = 0  # padding examples count nowhere
  roc = metrics.classification_metrics(labels, logits, real)["roc_curve"]
  scores = np.exp(metrics.log_softmax(logits))[:, 1]  # the positive class's probability
  keep = real > 0
  s, y = scores[keep], labels[keep]
  assert roc["thresholds"] == sorted(set(s.tolist()), reverse=True)
  for t, fpr, tpr in zip(roc["thresholds"], roc["fpr"], roc["tpr"]):
    called = s >= t
    assert tpr == pytest.approx(np.sum(called & (y == 1)) / np.sum(y == 1))
    assert fpr == pytest.approx(np.sum(called & (y == 0)) / np.sum(y == 0))
  # Trapezoidal area from (0, 0) = P(positive scores above negative), ties counted half.
  fpr, tpr = np.r_[0.0, roc["fpr"]], np.r_[0.0, roc["tpr"]]
  area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
  pos, neg = s[y == 1][:, None], s[y == 0][None, :]
  assert area == pytest.approx(float(np.mean((pos > neg) + 0.5 * (pos == neg))))
  assert "roc_curve" not in metrics.classification_metrics([0, 1, 2], np.eye(3))  # binary only


def test_precision_recall_curve_matches_counting_at_every_threshold():
  rng = np.random.default_rng(11)
  labels = rng.integers(0, 2, 200)
  logits = np.stack([np.zeros(200), labels + rng.normal(size=200)], axis=1)
  logits[::5, 1] = -0.5  # ties
  real = np.ones(200)
  real[:15] = 0
  computed = metrics.classification_metrics(labels, logits, real)
  pr = computed["pr_curve"]
  assert pr["thresholds"] == computed["roc_curve"]["thresholds"]
  assert pr["recall"] == computed["roc_curve"]["tpr"]
  scores = np.exp(metrics.log_softmax(logits))[:, 1]
  s, y = scores[real > 0], labels[real > 0]
  for t, precision, recall in zip(pr["thresholds"], pr["precision"], pr["recall"]):
    called = s >= t
    assert precision == pytest.approx(np.sum(called & (y == 1)) / np.sum(called))
    assert recall == pytest.approx(np.sum(called & (y == 1)) / np.sum(y == 1))
  assert "pr_curve" not in metrics.classification_metrics([0, 1, 2], np.eye(3))


# --- multi-label: against scikit-learn on the same predictions ---------------------------------

def _multilabel_case(seed=3, n=400, k=6):
  """Labels of real-looking rarity (one label in two rows, one in fifty, one never) and logits
  that know them a little: every kind of threshold and tie appears."""
  rng = np.random.default_rng(seed)
  rates = np.array([0.5, 0.2, 0.1, 0.05, 0.02, 0.0])[:k]
  y = (rng.random((n, k)) < rates).astype(np.int64)
  logits = np.round(rng.normal(size=(n, k)) + 1.5 * y - 1.0, 1)  # rounded: ties
  return y, logits


def test_multilabel_metrics_equal_scikit_learns():
  y, logits = _multilabel_case()
  thresholds = [0.5, 0.3, 0.62, 0.2, 0.45, 0.5]
  weights = np.ones(len(y))
  weights[-7:] = 0  # padding rows count for nothing
  m = metrics.multilabel_metrics(y, logits, thresholds, weights, [f"l{i}" for i in range(6)])
  real = weights > 0
  y, probs = y[real], 1 / (1 + np.exp(-logits[real]))
  pred = (probs >= np.array(thresholds)).astype(int)
  assert m["num_examples"] == len(y) == 393
  assert m["subset_accuracy"] == m["eval_accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
  assert m["hamming_loss"] == pytest.approx(sk.hamming_loss(y, pred))
  for avg in ("micro", "macro"):
    assert m[f"{avg}_f1"] == pytest.approx(sk.f1_score(y, pred, average=avg, zero_division=0))
    assert m[f"{avg}_precision"] == pytest.approx(
        sk.precision_score(y, pred, average=avg, zero_division=0))
    assert m[f"{avg}_recall"] == pytest.approx(
        sk.recall_score(y, pred, average=avg, zero_division=0))
  p, r, f, s = sk.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
  names = [f"l{i}" for i in range(6)]
  assert [m["precision"][n] for n in names] == pytest.approx(p)
  assert [m["recall"][n] for n in names] == pytest.approx(r)
  assert [m["f1"][n] for n in names] == pytest.approx(f)
  assert [m["support"][n] for n in names] == pytest.approx(s)
  aucs = [m["roc_auc"][n] for n in names]
  assert aucs[:5] == pytest.approx([sk.roc_auc_score(y[:, i], probs[:, i]) for i in range(5)])
  assert aucs[5] is None  # a label with no positive example has no ROC curve
  assert m["macro_roc_auc"] == pytest.approx(np.mean(aucs[:5]))
  assert m["eval_loss"] == pytest.approx(sk.log_loss(y.ravel(), probs.ravel()), rel=1e-6)


def test_best_f1_thresholds_reach_each_labels_best_f1():
  y, logits = _multilabel_case(seed=5)
  probs = 1 / (1 + np.exp(-logits))
  chosen = metrics.best_f1_thresholds(y, probs)
  for k in range(y.shape[1]):
    if not y[:, k].any():
      assert chosen[k] == 0.5  # nothing to choose on
      continue
    best = max(sk.f1_score(y[:, k], (probs[:, k] >= t).astype(int), zero_division=0)
               for t in np.unique(probs[:, k]))
    got = sk.f1_score(y[:, k], (probs[:, k] >= chosen[k]).astype(int), zero_division=0)
    assert got == pytest.approx(best)
    # Between two of the label's probabilities, not on one: a margin either way.
    assert chosen[k] not in set(probs[:, k].tolist())
