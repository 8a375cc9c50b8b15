"""The blessing decision: thresholds, the baseline margin, and every reason recorded."""

from __future__ import annotations

import numpy as np
import pytest

from bertline.evaluator import blessing
from bertline.evaluator import metrics as metrics_lib


def _m(acc, loss=0.5, mcc=0.3, f1=None):
  return {"eval_accuracy": acc, "eval_loss": loss, "matthews_corrcoef": mcc, "binary_f1": f1,
          "macro_f1": 0.5}


def test_thresholds_bound_from_the_right_side():
  t = {"eval_accuracy": 0.9, "eval_loss": 0.4}
  ok = blessing.decide(_m(0.9, loss=0.4), t)
  assert ok["blessed"] and len(ok["reasons"]) == 2
  assert all(r.startswith("PASS") for r in ok["reasons"])
  bad = blessing.decide(_m(0.95, loss=0.41), t)
  assert not bad["blessed"]
  assert "FAIL eval_loss 0.41 > 0.4 (threshold)" in bad["reasons"]
  assert "PASS eval_accuracy 0.95 >= 0.9 (threshold)" in bad["reasons"]


def test_baseline_margin_and_undefined_metrics():
  t = {"matthews_corrcoef": 0.2}
  close = blessing.decide(_m(0.80, mcc=0.25), t, baseline=_m(0.805, mcc=0.26), max_regression=0.01)
  assert close["blessed"], close["reasons"]
  assert len([c for c in close["checks"] if c["kind"] == "baseline"]) == 2  # accuracy and MCC
  worse = blessing.decide(_m(0.80, mcc=0.25), t, baseline=_m(0.82, mcc=0.26), max_regression=0.01)
  assert not worse["blessed"]
  assert [r for r in worse["reasons"] if r.startswith("FAIL")] == [
      "FAIL eval_accuracy 0.8 < 0.81 (baseline 0.82 - max_regression 0.01)"]
  # binary_f1 is undefined for a 3-label task: a threshold on it cannot pass.
  undefined = blessing.decide(_m(0.9), {"binary_f1": 0.5})
  assert not undefined["blessed"] and "not defined" in undefined["reasons"][0]
  nothing = blessing.decide(_m(0.1))
  assert nothing["blessed"] and "nothing to check" in nothing["reasons"][0]


def test_bad_bounds_are_refused():
  # --threshold's own checks (a known metric, METRIC=VALUE, a number) are EvaluateConfig's
  # and its flag's: tests/evaluator/test_config.py.
  with pytest.raises(ValueError, match="threshold: unknown metric 'accuracy'"):
    blessing.decide(_m(0.9), {"accuracy": 0.9})
  with pytest.raises(ValueError, match="must be >= 0"):
    blessing.decide(_m(0.9), max_regression=-1)


def test_write_and_read_round_trip(tmp_path):
  record = blessing.decide(_m(0.9), {"eval_accuracy": 0.95})
  path = blessing.write(str(tmp_path), record)
  assert blessing.read(path) == record
  (tmp_path / "junk.json").write_text("{}")
  with pytest.raises(ValueError, match="no boolean 'blessed' key"):
    blessing.read(str(tmp_path / "junk.json"))


def test_a_split_of_one_label_never_blesses_whatever_the_score():
  # Every dev example is "1" and the model says "1" everywhere: accuracy 1.0, and meaningless.
  labels = np.ones(40, np.int64)
  logits = np.stack([np.zeros(40), np.full(40, 3.0)], axis=1)
  metrics = metrics_lib.classification_metrics(labels, logits, label_names=["0", "1"])
  assert metrics["eval_accuracy"] == 1.0
  decision = blessing.decide(metrics, {"eval_accuracy": 0.9})
  assert decision["blessed"] is False
  assert decision["reasons"][-1] == (
      "FAIL every one of the 40 evaluated examples has label '1': a model that always answers "
      "'1' would score the same; evaluate on a split with two labels or more")
  # Two labels in the split: the same model is judged on its metrics alone.
  labels[::2] = 0
  mixed = metrics_lib.classification_metrics(labels, logits, label_names=["0", "1"])
  assert [c["metric"] for c in blessing.decide(mixed, {"eval_accuracy": 0.4})["checks"]] == \
      ["eval_accuracy"]
