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
import tensorflow as tf

from bertline import fileio, flags, schema
from bertline.evaluator import config, scoring
from bertline.evaluator.config import PredictConfig

log = logging.getLogger("bertline.predict")


def format_line(probabilities: np.ndarray, guid: Optional[str] = None,
                label: Optional[str] = None) -> str:
  """run_classifier's line: str() of each float32 probability, tab-separated."""
  cols = [] if guid is None else [guid]
  cols.extend(str(np.float32(p)) for p in probabilities)
  if label is not None:
    cols.append(label)
  return "\t".join(cols) + "\n"


def run(config: PredictConfig) -> str:
  """Writes predictions for every example of `config.split`; returns the output path."""
  model, data_dir, split, output = config.model, config.data_dir, config.split, config.output
  metadata = schema.read_metadata(data_dir)
  logits_fn, labels, vocab_sha, _ = scoring.model_logits_fn(model)
  scoring.check_same_labels(labels, metadata.labels, model, data_dir)
  scoring.check_same_vocab(vocab_sha, metadata, model, data_dir)
  scores = scoring.score_split(logits_fn, data_dir, metadata, split, config.batch_size,
                               desc=f"predict {split}")
  if metadata.multi_label:  # each label's sigmoid; the labels at or above their thresholds
    probs = tf.sigmoid(tf.constant(scores["logits"])).numpy()
    called = probs >= np.asarray(scoring.label_thresholds(model, labels), np.float32)
    names = [",".join(label for label, c in zip(labels, row) if c) for row in called]
  else:
    probs = tf.nn.softmax(tf.constant(scores["logits"]), axis=-1).numpy()
    names = [labels[i] for i in probs.argmax(-1)]
  output = output or (fileio.join(model, schema.PREDICTIONS_FILE) if not scoring.is_export(model)
                      else schema.PREDICTIONS_FILE)
  lines = []
  for i in range(len(probs)):
    if not scores["is_real_example"][i]:
      continue
    lines.append(format_line(probs[i], scores["guid"][i] if config.with_guid else None,
                             names[i] if config.with_label else None))
  fileio.write_text_atomic(output, "".join(lines))
  log.info("Wrote %d predictions to %s", len(lines), output)
  return output


# The flags live with the config (evaluator/config.py): `--help` answers without TensorFlow.
build_parser = config.predict_parser


def main(argv: List[str]) -> int:
  parser = build_parser()
  path = run(flags.config_from_flags(PredictConfig, parser.parse_args(argv), parser))
  print(f"predict: {path}")
  return 0
