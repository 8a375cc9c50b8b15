"""components/kfp_components.py: what a component logs to the Kubeflow UI from its step's result."""

import numpy as np
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Metrics, Model

from bertline.components import kfp_components, steps
from bertline.evaluator import metrics as metrics_lib


def test_the_evaluate_component_logs_per_class_metrics_and_a_binary_roc_curve(monkeypatch,
                                                                              tmp_path):
  labels = np.array([0, 1, 1, 0, 1])
  logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.0, 0.2], [0.0, 3.0]])
  computed = metrics_lib.classification_metrics(labels, logits, label_names=["neg", "pos"])
  monkeypatch.setattr(steps, "evaluate", lambda *a, **k: steps.Evaluation(
      computed, {"blessed": True, "reasons": []}, True))
  artifacts = {name: cls(name=name, uri=str(tmp_path / name)) for name, cls in (
      ("examples", Dataset), ("model", Model), ("metrics", Metrics),
      ("confusion", ClassificationMetrics), ("evaluation", Artifact))}
  blessed = kfp_components.evaluate(evaluate_settings={"split": "dev"}, baseline_model="",
                                    **artifacts)
  assert blessed is True
  logged = artifacts["metrics"].metadata
  assert logged["precision_pos"] == computed["precision"]["pos"] and logged["support_neg"] == 2.0
  assert logged["eval_accuracy"] == computed["eval_accuracy"]
  ui = artifacts["confusion"].metadata
  assert [p["falsePositiveRate"] for p in ui["confidenceMetrics"]] == computed["roc_curve"]["fpr"]
  assert [p["recall"] for p in ui["confidenceMetrics"]] == computed["roc_curve"]["tpr"]
  assert ui["confusionMatrix"]["annotationSpecs"] == [{"displayName": "neg"},
                                                      {"displayName": "pos"}]
