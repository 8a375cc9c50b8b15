"""`bertline evaluate`: metrics of a split and a blessing.

    bertline evaluate --model-dir work/model --data-dir work/data --split dev \\
        --threshold eval_accuracy=0.9 --baseline-model registry/sentiment/1700000000 \\
        --max-regression 0.01

Writes <output-dir>/metrics.json (eval_accuracy and eval_loss weighted by
is_real_example as run_classifier's metric_fn, per-class precision / recall /
F1, macro-F1, Matthews correlation, binary F1, confusion matrix, example
count) and blessing.json (the decision and every reason). The baseline — the
model now in production, as exported — is scored on the very same examples.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional

import numpy as np

from bertline import fileio, flags, schema
from bertline.evaluator import blessing as blessing_lib
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator import scoring

log = logging.getLogger("bertline.evaluate")


def _score_model(model: str, data_dir: str, metadata: schema.DataMetadata, split: str,
                 batch_size: int, which: str, role: str) -> Dict[str, Any]:
  logits_fn, labels, vocab_sha, info = scoring.model_logits_fn(model, which)
  scoring.check_same_labels(labels, metadata.labels, model, data_dir)
  scoring.check_same_vocab(vocab_sha, metadata, model, data_dir)
  scores = scoring.score_split(logits_fn, data_dir, metadata, split, batch_size,
                               desc=f"evaluate {role} on {split}")
  metrics = metrics_lib.classification_metrics(scores["label_ids"], scores["logits"],
                                               scores["is_real_example"], labels)
  metrics.update({"split": split, "data_dir": data_dir, "model": model, "model_kind": info["kind"]})
  return {"metrics": metrics, "guid": scores["guid"]}


def run(model_dir: str, data_dir: str, split: str = "dev", baseline_model: Optional[str] = None,
        output_dir: Optional[str] = None, thresholds: Optional[Dict[str, float]] = None,
        max_regression: float = 0.0, batch_size: int = scoring.DEFAULT_BATCH_SIZE,
        which: str = "best") -> Dict[str, Any]:
  """Evaluates a model on `split`, compares it with the baseline; writes both files.

  Args:
    model_dir: str. Training model_dir (or an exported version directory).
    data_dir: str. Preprocess output directory; its labels must be the model's.
    split: str. Split to evaluate.
    baseline_model: str or None. Exported version directory of the production model.
    output_dir: str or None. Where metrics.json / blessing.json go (default model_dir).
    thresholds: dict of metric name to bound (see blessing.decide).
    max_regression: float. Allowed absolute regression against the baseline.
    batch_size: int. Examples per batch.
    which: "best" or "latest" checkpoint.
  Returns:
    {"metrics": ..., "blessing": ..., "metrics_file": path, "blessing_file": path}
  """
  thresholds = dict(thresholds or {})
  for name in thresholds:
    blessing_lib.check_metric_name(name, "--threshold")
  if max_regression < 0:
    raise ValueError(f"--max-regression {max_regression} must be >= 0")
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
  decision = blessing_lib.decide(metrics, thresholds, baseline_metrics, max_regression)
  decision.update({"model": model_dir, "baseline_model": baseline_model, "data_dir": data_dir,
                   "split": split})
  output_dir = output_dir or model_dir
  metrics_file = fileio.join(output_dir, schema.METRICS_FILE)
  fileio.write_json_atomic(metrics_file, metrics)
  blessing_file = blessing_lib.write(output_dir, decision)
  log.info("%s: eval_accuracy %.4f, eval_loss %.4f on %d examples; %s", split,
           metrics["eval_accuracy"], metrics["eval_loss"], metrics["num_examples"],
           "BLESSED" if decision["blessed"] else "NOT blessed")
  for reason in decision["reasons"]:
    log.info("  %s", reason)
  return {"metrics": metrics, "blessing": decision, "metrics_file": metrics_file,
          "blessing_file": blessing_file}


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline evaluate",
      description="Metrics of a trained model on a preprocessed split (metrics.json) and a "
      "blessing against thresholds and the production model (blessing.json).",
      epilog="example:\n  bertline evaluate --model-dir work/model --data-dir work/data --split dev "
      "--threshold eval_accuracy=0.7")
  parser.add_argument("--model-dir", required=True,
                      help="training model_dir (best checkpoint, else latest)")
  parser.add_argument("--data-dir", required=True, help="`bertline preprocess` output directory")
  parser.add_argument("--split", default="dev", help="split to evaluate (default dev)")
  parser.add_argument("--baseline-model",
                      help="exported version directory of the model in production; the candidate "
                      "must not be worse than it by more than --max-regression")
  parser.add_argument("--output-dir", help="where metrics.json and blessing.json go "
                      "(default: --model-dir)")
  parser.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                      help="bless only if METRIC reaches VALUE (a maximum for eval_loss); "
                      "repeatable, e.g. --threshold eval_accuracy=0.9. Metrics: "
                      + ", ".join(metrics_lib.SCALAR_METRICS))
  parser.add_argument("--max-regression", type=float, default=0.0,
                      help="how much worse than the baseline (absolute) a compared metric may be "
                      "(default 0)")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                      help="which checkpoint of --model-dir (default best, else latest)")
  parser.add_argument("--batch-size", type=int, default=scoring.DEFAULT_BATCH_SIZE,
                      help=f"examples per batch (default {scoring.DEFAULT_BATCH_SIZE})")
  return parser


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  result = run(args.model_dir, args.data_dir, args.split, args.baseline_model, args.output_dir,
               blessing_lib.parse_thresholds(args.threshold), args.max_regression,
               args.batch_size, args.checkpoint)
  m = result["metrics"]
  print(f"evaluate: eval_accuracy={m['eval_accuracy']:.4f} eval_loss={m['eval_loss']:.4f} "
        f"n={m['num_examples']} -> {result['metrics_file']}")
  print(f"blessing: {'BLESSED' if result['blessing']['blessed'] else 'NOT BLESSED'} -> "
        f"{result['blessing_file']}")
  return 0
