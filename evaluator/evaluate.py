"""`bertline evaluate`: metrics of a split and a blessing.

    bertline evaluate --model-dir work/model --data-dir work/data --split dev \\
        --threshold eval_accuracy=0.9 --baseline-model registry/sentiment/1700000000 \\
        --max-regression 0.01

Writes <output-dir>/metrics.json (eval_accuracy and eval_loss weighted by
is_real_example as run_classifier's metric_fn, per-class precision / recall /
F1, macro-F1, Matthews correlation, binary F1, confusion matrix, example
count, and ROC and precision-recall curves for binary tasks), blessing.json (the
decision and every reason) and report.html (all of it to look at, with the
most confidently wrong examples: evaluator/report.py). The baseline — the
model now in production, as exported — is scored on the very same examples.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf

from bertline import fileio, flags, schema
from bertline.evaluator import blessing as blessing_lib
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator import report, scoring
from bertline.evaluator import config
from bertline.evaluator.config import EvaluateConfig
from bertline.export_dir import ExportDir
from bertline.model.model_dir import ModelDir
from bertline.preprocessing import tokenization

log = logging.getLogger("bertline.evaluate")


def _score_model(model: str, data_dir: str, metadata: schema.DataMetadata, split: str,
                 batch_size: int, which: str, role: str) -> Dict[str, Any]:
  logits_fn, labels, vocab_sha, info = scoring.model_logits_fn(model, which)
  scoring.check_same_labels(labels, metadata.labels, model, data_dir)
  scoring.check_same_vocab(vocab_sha, metadata, model, data_dir)
  scores = scoring.score_split(logits_fn, data_dir, metadata, split, batch_size,
                               desc=f"evaluate {role} on {split}")
  if metadata.multi_label:  # each label called at the model's own threshold
    metrics = metrics_lib.multilabel_metrics(scores["label_ids"], scores["logits"],
                                             scoring.label_thresholds(model, labels),
                                             scores["is_real_example"], labels)
  else:
    metrics = metrics_lib.classification_metrics(scores["label_ids"], scores["logits"],
                                                 scores["is_real_example"], labels)
  metrics.update({"split": split, "data_dir": data_dir, "model": model, "model_kind": info["kind"]})
  return {"metrics": metrics, "guid": scores["guid"], "scores": scores}


def _vocab_of(model: str) -> str:
  return ExportDir(model).vocab_file if scoring.is_export(model) else ModelDir(model).vocab_file


def wrong_examples(scores: Dict[str, Any], labels: List[str], data_dir: str,
                   metadata: schema.DataMetadata, split: str, vocab_file: str,
                   count: int = report.WRONG_EXAMPLES) -> List[Dict[str, Any]]:
  """The `count` real examples the model gets wrong with the highest confidence, with their text
  (decoded from the split's WordPiece ids: one more pass over its shards, for those guids only).
  None for a multi-label task (not built yet: the report lists per-label metrics only)."""
  if metadata.multi_label:
    return []
  probabilities = np.exp(metrics_lib.log_softmax(np.asarray(scores["logits"], np.float64)))
  predicted = probabilities.argmax(-1)
  wrong = np.nonzero((predicted != scores["label_ids"]) & (scores["is_real_example"] > 0))[0]
  chosen = sorted(wrong, key=lambda i: -probabilities[i, predicted[i]])[:count]
  wanted = {scores["guid"][i]: i for i in chosen}
  vocab = tokenization.load_vocab(vocab_file)
  texts = {}
  spec = metadata.feature_spec()
  for record in tf.data.TFRecordDataset(metadata.split_files(data_dir, split),
                                        compression_type=schema.TF_COMPRESSION_TYPE[
                                            metadata.compression]):
    ex = tf.io.parse_single_example(record, spec)
    guid = ex[schema.GUID].numpy()[0].decode("utf-8")
    if guid in wanted:
      mask = ex[schema.INPUT_MASK].numpy().astype(bool)
      ids, segments = ex[schema.INPUT_IDS].numpy()[mask], ex[schema.SEGMENT_IDS].numpy()[mask]
      texts[guid] = (tokenization.detokenize(ids[segments == 0], vocab),
                     tokenization.detokenize(ids[segments == 1], vocab))
  return [{"guid": scores["guid"][i], "label": labels[scores["label_ids"][i]],
           "predicted": labels[predicted[i]], "confidence": float(probabilities[i, predicted[i]]),
           "text_a": texts[scores["guid"][i]][0], "text_b": texts[scores["guid"][i]][1]}
          for i in chosen]


def run(config: EvaluateConfig) -> Dict[str, Any]:
  """Evaluates `config.model_dir` on `config.split`, compares it with the baseline; writes both files.

  Args:
    config: EvaluateConfig. The model (a training model_dir or an exported
      version), the preprocess output (its labels must be the model's), the
      split, the thresholds, the production model as baseline and how much
      regression against it is tolerated (evaluator/config.py says each).
  Returns:
    {"metrics": ..., "blessing": ..., "metrics_file": path, "blessing_file": path}
  """
  model_dir, data_dir, split = config.model_dir, config.data_dir, config.split
  baseline_model, batch_size, which = config.baseline_model, config.batch_size, config.checkpoint
  metadata = schema.read_metadata(data_dir)
  if split not in metadata.splits:
    metadata.split_files(data_dir, split)  # raises the clear error
  started = time.time()
  candidate = _score_model(model_dir, data_dir, metadata, split, batch_size, which, "model")
  metrics = candidate["metrics"]
  baseline_metrics = None
  if baseline_model:
    if not scoring.is_export(baseline_model):
      raise FileNotFoundError(f"--baseline-model {baseline_model} is not an exported model "
                              "(no saved_model.pb); pass the version directory now in production, "
                              "e.g. gs://bucket/models/NAME/1700000000.")
    baseline = _score_model(baseline_model, data_dir, metadata, split, batch_size, which,
                            "baseline")
    if not np.array_equal(baseline["guid"], candidate["guid"]):
      raise AssertionError("baseline and candidate were scored on different examples")
    baseline_metrics = baseline["metrics"]
    metrics["baseline"] = baseline_metrics
  metrics["seconds"] = round(time.time() - started, 3)
  decision = blessing_lib.decide(metrics, dict(config.thresholds), baseline_metrics,
                                 config.max_regression)
  decision.update({"model": model_dir, "baseline_model": baseline_model or None,
                   "data_dir": data_dir, "split": split})
  output_dir = config.output_dir or model_dir
  metrics_file = fileio.join(output_dir, schema.METRICS_FILE)
  fileio.write_json_atomic(metrics_file, metrics)
  blessing_file = blessing_lib.write(output_dir, decision)
  wrong = wrong_examples(candidate["scores"], metrics["labels"], data_dir, metadata, split,
                         _vocab_of(model_dir))
  report_file = report.write(output_dir, metrics, decision, wrong)
  log.info("%s: eval_accuracy %.4f, eval_loss %.4f%s on %d examples; %s", split,
           metrics["eval_accuracy"], metrics["eval_loss"],
           f", micro_f1 {metrics['micro_f1']:.4f}, macro_f1 {metrics['macro_f1']:.4f}"
           if metadata.multi_label else "", metrics["num_examples"],
           "BLESSED" if decision["blessed"] else "NOT blessed")
  for reason in decision["reasons"]:
    log.info("  %s", reason)
  return {"metrics": metrics, "blessing": decision, "metrics_file": metrics_file,
          "blessing_file": blessing_file, "report_file": report_file}


# The flags live with the config (evaluator/config.py): `--help` answers without TensorFlow.
build_parser = config.evaluate_parser


def main(argv: List[str]) -> int:
  parser = build_parser()
  result = run(flags.config_from_flags(EvaluateConfig, parser.parse_args(argv), parser))
  m = result["metrics"]
  print(f"evaluate: eval_accuracy={m['eval_accuracy']:.4f} eval_loss={m['eval_loss']:.4f} "
        f"n={m['num_examples']} -> {result['metrics_file']}")
  print(f"blessing: {'BLESSED' if result['blessing']['blessed'] else 'NOT BLESSED'} -> "
        f"{result['blessing_file']}")
  print(f"report: {result['report_file']}")
  return 0
