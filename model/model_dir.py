"""A training model_dir: everything a run needs to resume, and later stages to read.

Layout (names from `bertline.schema`):

  model_config.json    the encoder's ModelConfig (bertline's own format)
  labels.txt           the label list, one per line; label_ids index into it
  vocab.txt            the WordPiece vocabulary (copied from the init checkpoint)
  data_metadata.json   the preprocess metadata the model was trained on
  train_config.json    the resolved TrainConfig
  eval_history.jsonl   one JSON line per periodic evaluation
  checkpoints/         rolling tf.train.Checkpoint files (keep N)
  best/                the best checkpoint by the eval metric, and best.json
  events/              TensorBoard events (train/, eval/)

Checkpoints are `tf.train.Checkpoint(model=<BertClassifier>, ...)`: the
weights alone read back with `tf.train.Checkpoint(model=m).read(path)`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional

import tensorflow as tf

from bertline import fileio, schema
from bertline.model import modeling
from bertline.model.model_config import ModelConfig

log = logging.getLogger("bertline")

BEST_INFO_FILE = "best.json"
EVENTS_SUBDIR = "events"


# The classifier head's bias in a checkpoint of tf.train.Checkpoint(model=BertClassifier).
_HEAD_BIAS_KEY = "model/head/bias/.ATTRIBUTES/VARIABLE_VALUE"


class ModelDir:
  """Reader (and, for the trainer, writer) of a model_dir.

  Args:
    path: str. The model_dir (local or gs://).

  Example:
    >>> md = ModelDir("work/model")
    >>> classifier = md.load_classifier("best")
    >>> md.labels()       # ['negative', 'neutral', 'positive']
  """

  def __init__(self, path: str):
    self.path = path

  # --- paths -----------------------------------------------------------------------
  def file(self, name: str) -> str:
    return fileio.join(self.path, name)

  @property
  def vocab_file(self) -> str:
    return self.file(schema.VOCAB_FILE)

  @property
  def checkpoint_dir(self) -> str:
    return self.file(schema.CHECKPOINT_SUBDIR)

  @property
  def best_dir(self) -> str:
    return self.file(schema.BEST_SUBDIR)

  @property
  def events_dir(self) -> str:
    return self.file(EVENTS_SUBDIR)

  def exists(self) -> bool:
    """Whether a training run has started here (its config was written)."""
    return fileio.exists(self.file(schema.TRAIN_CONFIG_FILE))

  # --- readers ---------------------------------------------------------------------
  def _read(self, name: str) -> str:
    path = self.file(name)
    if not fileio.exists(path):
      raise FileNotFoundError(
          f"{path} not found: {self.path!r} is not a finished `bertline train` model_dir "
          "(train writes it before the first step). Pass the --model-dir of a training run.")
    return fileio.read_text(path)

  def _read_json(self, name: str) -> Any:
    text = self._read(name)
    try:
      return json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{self.file(name)} is not valid JSON ({e}).") from e

  def model_config(self):
    return ModelConfig.from_dict(self._read_json(schema.MODEL_CONFIG_FILE))

  def labels(self) -> List[str]:
    return [line for line in self._read(schema.LABELS_FILE).split("\n") if line]

  def data_metadata(self):
    """The metadata.json of the data it was trained on (DataMetadata, or PretrainingMetadata
    for a `bertline pretrain` model_dir)."""
    raw = self._read_json(schema.DATA_METADATA_COPY)
    source = self.file(schema.DATA_METADATA_COPY)
    if raw.get("kind") == schema.PRETRAINING_KIND:
      return schema.PretrainingMetadata.from_dict(raw, source=source)
    return schema.DataMetadata.from_dict(raw, source=source)

  def train_config(self) -> Dict[str, Any]:
    """The resolved TrainConfig, as a dict (train.TrainConfig.from_dict reads it back)."""
    return self._read_json(schema.TRAIN_CONFIG_FILE)

  def eval_history(self) -> List[Dict[str, Any]]:
    path = self.file(schema.EVAL_HISTORY_FILE)
    if not fileio.exists(path):
      return []
    return [json.loads(line) for line in fileio.read_text(path).splitlines() if line.strip()]

  def best_info(self) -> Optional[Dict[str, Any]]:
    """{"step", "metric", "value", "metrics", "checkpoint"} of the best checkpoint, or None."""
    path = fileio.join(self.best_dir, BEST_INFO_FILE)
    if not fileio.exists(path):
      return None
    return json.loads(fileio.read_text(path))

  def latest_checkpoint(self) -> Optional[str]:
    return tf.train.latest_checkpoint(self.checkpoint_dir)

  def best_checkpoint(self) -> Optional[str]:
    return tf.train.latest_checkpoint(self.best_dir)

  def checkpoint(self, which: str = "best") -> str:
    """The checkpoint prefix to read: "best" (falling back to latest) or "latest"."""
    if which not in ("best", "latest"):
      raise ValueError(f"checkpoint {which!r}: choose 'best' or 'latest'.")
    path = (self.best_checkpoint() if which == "best" else None) or self.latest_checkpoint()
    if not path:
      raise FileNotFoundError(
          f"no checkpoint in {self.checkpoint_dir} or {self.best_dir}: the training run in "
          f"{self.path!r} has not saved one yet. Train (or resume) with `bertline train "
          f"--model-dir {self.path} ...` first.")
    return path

  def build_classifier(self):
    """A BertClassifier of this model_dir's shape, with fresh weights."""
    config = self.model_config()
    dropout = float(self.train_config().get("classifier_dropout", 0.1)) if fileio.exists(
        self.file(schema.TRAIN_CONFIG_FILE)) else 0.1
    return modeling.BertClassifier(config, len(self.labels()), dropout_rate=dropout)

  def _check_labels_fit(self, path: str) -> None:
    """labels.txt names one label per output of the checkpoint's head: checked before a head
    of len(labels) outputs is built (a wrong labels.txt of a million lines would build a head
    of gigabytes and then blame the checkpoint)."""
    try:
      shape = dict(tf.train.list_variables(path)).get(_HEAD_BIAS_KEY)
    except tf.errors.OpError:
      return  # an unreadable checkpoint: reading it below says so
    labels = self.labels()
    if shape and shape[0] != len(labels):
      raise ValueError(
          f"{self.file(schema.LABELS_FILE)} has {len(labels)} labels but the checkpoint {path} "
          f"was trained with {shape[0]}: restore the labels.txt train wrote (one label per "
          "line, in label-id order).")

  def load_classifier(self, which: str = "best"):
    """The trained BertClassifier, weights read from checkpoint `which`.

    Every weight of the classifier must be in the checkpoint (the optimizer's
    slots and the input position are skipped).
    """
    path = self.checkpoint(which)
    self._check_labels_fit(path)
    model = self.build_classifier()
    try:
      status = tf.train.Checkpoint(model=model).read(path)
      status.expect_partial()
      status.assert_existing_objects_matched()
    except (IndexError, ValueError, AssertionError, tf.errors.OpError) as e:
      reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
      latest = self.latest_checkpoint()
      if which == "best" and latest and latest != path:
        # best/ is a copy of one evaluation's weights; the rolling checkpoints are intact.
        log.warning(
            "The best checkpoint %s is damaged (%s); using the latest, %s.", path, reason, latest)
        return self.load_classifier("latest")
      raise ValueError(f"checkpoint {path} is damaged ({reason}): restore it from a copy, or "
                       "re-run `bertline train` with this --model-dir (it resumes from the "
                       "newest intact checkpoint).") from e
    return model

  # --- writers (the trainer) ---------------------------------------------------------
  def write_json(self, name: str, data: Any) -> str:
    path = self.file(name)
    fileio.write_json_atomic(path, data)
    return path

  def write_labels(self, labels: List[str]) -> str:
    path = self.file(schema.LABELS_FILE)
    fileio.write_text_atomic(path, "".join(f"{label}\n" for label in labels))
    return path

  def write_vocab(self, source: str) -> str:
    fileio.write_bytes_atomic(self.vocab_file, fileio.read_bytes(source))
    return self.vocab_file

  def append_eval(self, record: Dict[str, Any]) -> None:
    """Appends one evaluation; rewritten whole (atomically), so never half a line."""
    history = self.eval_history()
    # A resumed run may re-evaluate a step it had reached before being killed.
    history = [h for h in history if h.get("step") != record.get("step")] + [record]
    fileio.write_text_atomic(self.file(schema.EVAL_HISTORY_FILE),
                             "".join(fileio.to_json(h, indent=None) for h in history))

  def write_best_info(self, info: Dict[str, Any]) -> None:
    fileio.write_json_atomic(fileio.join(self.best_dir, BEST_INFO_FILE), info)
