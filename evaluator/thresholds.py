"""A multi-label model's decision thresholds: chosen on the dev split, recorded with the model.

One sigmoid per label leaves one decision per label: call it when its
probability is at least the label's threshold. A fixed 0.5 is rarely right for
rare labels, so by default each label gets the threshold that maximises its own
F1 on the dev split (metrics.best_f1_thresholds), chosen by `bertline train`
once training ends, with the best checkpoint, and written to the model_dir's
thresholds.json. Evaluate, export (the serving graph's constants) and batch
scoring read them from there, so every stage calls labels alike.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

from bertline import fileio, schema
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator import scoring

log = logging.getLogger("bertline.train")

SPLIT = "dev"


def choose(model_dir: str, data_dir: str, metadata: schema.DataMetadata,
           fixed: float = 0.0) -> Dict[str, Any]:
  """Chooses the thresholds of model_dir's best checkpoint and writes thresholds.json.

  fixed: a threshold for every label (0: each label's F1-maximising one on the dev split,
    or 0.5 when there is no dev split).
  """
  labels = list(metadata.labels)
  if fixed:
    thresholds, rule = [float(fixed)] * len(labels), f"fixed {fixed}"
  elif SPLIT not in metadata.splits:
    thresholds, rule = [0.5] * len(labels), "0.5: no dev split to choose them on"
    log.warning("No dev split in %s: every label's threshold is 0.5.", data_dir)
  else:
    loaded = scoring.load_model_dir(model_dir)
    scores = scoring.score_split(scoring.classifier_logits_fn(loaded.classifier), data_dir,
                                 metadata, SPLIT, desc="choose label thresholds on dev")
    real = scores["is_real_example"] > 0
    thresholds = metrics_lib.best_f1_thresholds(scores["label_ids"][real],
                                                metrics_lib.sigmoid(scores["logits"][real]))
    rule = "each label's best F1 on the dev split"
  record = {"labels": labels, "thresholds": thresholds, "rule": rule}
  fileio.write_json_atomic(fileio.join(model_dir, schema.THRESHOLDS_FILE), record)
  log.info("Label thresholds (%s): %s", rule,
           ", ".join(f"{label} {t:.3f}" for label, t in zip(labels, thresholds)))
  return record

