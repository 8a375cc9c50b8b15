"""`bertline predict`: class probabilities for every example of a split.

    bertline predict --model work/model --data-dir work/data --split test --output test_results.tsv

Writes one line per input example, in input order, with the class
probabilities tab-separated exactly as run_classifier's test_results.tsv
(`str()` of each float32), optionally preceded by the guid and followed by the
predicted label's name. --model is a training model_dir or an exported
SavedModel version directory (loaded and scored by `evaluator.scoring`).
"""

from __future__ import annotations

import logging
from typing import List, Optional

import numpy as np

from bertline import fileio, flags, schema
from bertline.evaluator import scoring
from bertline.evaluator.scoring import DEFAULT_BATCH_SIZE

log = logging.getLogger("bertline.predict")


def format_line(probabilities: np.ndarray, guid: Optional[str] = None,
                label: Optional[str] = None) -> str:
  """run_classifier's line: str() of each float32 probability, tab-separated."""
  cols = [] if guid is None else [guid]
  cols.extend(str(np.float32(p)) for p in probabilities)
  if label is not None:
    cols.append(label)
  return "\t".join(cols) + "\n"


def run(model: str, data_dir: str, split: str = "test", output: Optional[str] = None,
        with_guid: bool = False, with_label: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE) -> str:
  """Writes predictions for every example of `split`; returns the output path."""
  metadata = schema.read_metadata(data_dir)
  logits_fn, labels, vocab_sha, _ = scoring.model_logits_fn(model)
  scoring.check_same_labels(labels, metadata.labels, model, data_dir)
  scoring.check_same_vocab(vocab_sha, metadata, model, data_dir)
  scores = scoring.score_split(logits_fn, data_dir, metadata, split, batch_size,
                               desc=f"predict {split}")
  import tensorflow as tf
  probs = tf.nn.softmax(tf.constant(scores["logits"]), axis=-1).numpy()
  predicted = probs.argmax(-1)
  output = output or (fileio.join(model, schema.PREDICTIONS_FILE) if not scoring.is_export(model)
                      else schema.PREDICTIONS_FILE)
  lines = []
  for i in range(len(probs)):
    if not scores["is_real_example"][i]:
      continue
    lines.append(format_line(probs[i], scores["guid"][i] if with_guid else None,
                             labels[predicted[i]] if with_label else None))
  fileio.write_text_atomic(output, "".join(lines))
  log.info("Wrote %d predictions to %s", len(lines), output)
  return output


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline predict",
      description="Class probabilities for every example of a preprocessed split, one line per "
      "example in input order, tab-separated as run_classifier's test_results.tsv.",
      epilog="example:\n  bertline predict --model work/model --data-dir work/data --split test "
      "--output test_results.tsv")
  parser.add_argument("--model", required=True,
                      help="training model_dir (best checkpoint, else latest) or an exported "
                      "SavedModel version directory")
  parser.add_argument("--data-dir", required=True, help="`bertline preprocess` output directory")
  parser.add_argument("--split", default="test", help="split to predict (default test)")
  parser.add_argument("--output", help=f"TSV to write (default: <model>/{schema.PREDICTIONS_FILE} "
                      f"for a model_dir, ./{schema.PREDICTIONS_FILE} for an exported version)")
  parser.add_argument("--with-guid", action="store_true", help="first column: the example's guid")
  parser.add_argument("--with-label", action="store_true",
                      help="last column: the predicted label's name")
  parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                      help=f"examples per batch (default {DEFAULT_BATCH_SIZE})")
  return parser


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  path = run(args.model, args.data_dir, args.split, args.output, args.with_guid,
             args.with_label, args.batch_size)
  print(f"predict: {path}")
  return 0
