"""Scoring a model over a preprocessed split: what evaluate, predict and export share.

  model = scoring.model_logits_fn("work/model")         # a model_dir or an exported version
  scores = scoring.score(model.logits_fn, scoring.split_dataset(data_dir, metadata, "dev"))

Loads a training model_dir's classifier (`load_model_dir`) or an exported
SavedModel, checks that its labels and vocabulary are the data's, reads a
split with its guids (`split_dataset`) and runs the model over it in input
(guid) order (`score`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's ops)
from tqdm import tqdm

from bertline import fileio, records, schema
from bertline.evaluator.config import DEFAULT_BATCH_SIZE
from bertline.export_dir import ExportDir
from bertline.exporter import quantize
from bertline.model.model_dir import ModelDir

# --- model_dir --------------------------------------------------------------------

@dataclasses.dataclass
class LoadedModel:
  """A trained classifier and what the model_dir says about it.

  Attributes:
    classifier: BertClassifier with the checkpoint's weights.
    labels: list of str. Label names, indexed by label id.
    vocab_file: str. The vocab.txt the model was trained with.
    data_metadata: schema.DataMetadata of the training data.
    model_config: dict. The encoder's ModelConfig as a dict.
    train_config: dict or None. train_config.json, when present.
    model_dir: str.
  """

  classifier: Any
  labels: List[str]
  vocab_file: str
  data_metadata: schema.DataMetadata
  model_config: Dict[str, Any]
  train_config: Optional[Dict[str, Any]]
  model_dir: str


def load_model_dir(model_dir: str, which: str = "best") -> LoadedModel:
  """Loads a training model_dir's classifier (best checkpoint, else latest).

  Uses the trainer's `ModelDir` (DEVELOPERS.md, "Stage interfaces").
  """
  if not fileio.exists(model_dir):
    raise FileNotFoundError(f"--model-dir {model_dir} does not exist; pass the --model-dir "
                            "`bertline train` wrote.")
  md = ModelDir(model_dir)
  classifier = md.load_classifier(which)
  try:
    train_config = md.train_config()
  except FileNotFoundError:
    train_config = None
  return LoadedModel(classifier=classifier, labels=md.labels(), vocab_file=md.vocab_file,
                     data_metadata=md.data_metadata(), model_config=md.model_config().to_dict(),
                     train_config=train_config, model_dir=model_dir)


def is_saved_model(path: str) -> bool:
  return ExportDir(path).is_saved_model()


def is_export(path: str) -> bool:
  """An exported version: a float SavedModel, or a quantized one (model.tflite)."""
  return ExportDir(path).is_export()


def check_same_labels(model_labels: List[str], data_labels: List[str], model: str,
                      data_dir: str) -> None:
  """Label ids only mean the same thing when the label lists are identical."""
  if list(model_labels) != list(data_labels):
    raise ValueError(
        f"label mismatch: {model} was trained with labels {list(model_labels)} but "
        f"{fileio.join(data_dir, schema.METADATA_FILE)} has {list(data_labels)}. Preprocess the "
        "data with the model's task (same labels in the same order) or use the matching model.")


# --- data ------------------------------------------------------------------------

def split_dataset(data_dir: str, metadata: schema.DataMetadata, split: str,
                  batch_size: int = DEFAULT_BATCH_SIZE):
  """Every example of `split` once, batched, with its guid.

  Batches hold int32 input_ids / input_mask / segment_ids [b, L] (L: the
  batch's longest real sequence; cutting the padding is exact), int32
  label_ids and is_real_example [b], and string guid [b].
  """

  files = metadata.split_files(data_dir, split)
  spec = metadata.feature_spec()
  ds = tf.data.TFRecordDataset(files, compression_type=schema.TF_COMPRESSION_TYPE[
      metadata.compression])
  return ds.batch(batch_size).map(lambda r: records.trim_batch(records.parse_batch(r, spec)),
                                  num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True).prefetch(2)


_DIGITS = re.compile(r"(\d+)")


def guid_sort_key(guid: str):
  """Natural order: "dev-9" before "dev-10" (guids end in the input line index)."""
  return [(0, int(part), "") if part.isdigit() else (1, 0, part)
          for part in _DIGITS.split(guid) if part]


def score(logits_fn: Callable[[Dict[str, Any]], Any], dataset, num_examples: int = 0,
          desc: str = "score") -> Dict[str, np.ndarray]:
  """Runs `logits_fn` over every batch; returns arrays in input (guid) order.

  Returns:
    {"guid": str [n], "label_ids": int [n], "is_real_example": int [n],
     "logits": float32 [n, num_labels]}
  """

  parts: Dict[str, List[np.ndarray]] = {"guid": [], "label_ids": [], "is_real_example": [],
                                        "logits": []}
  with tqdm(total=num_examples or None, desc=desc, unit="ex") as bar:
    for batch in dataset:
      features = {name: batch[name] for name in schema.SEQUENCE_FEATURES}
      parts["logits"].append(np.asarray(logits_fn(features), np.float32))
      parts["guid"].append(np.array([g.decode("utf-8") for g in batch[schema.GUID].numpy()],
                                    dtype=object))
      parts["label_ids"].append(batch[schema.LABEL_IDS].numpy())
      parts["is_real_example"].append(batch[schema.IS_REAL_EXAMPLE].numpy())
      bar.update(len(parts["guid"][-1]))
  if not parts["logits"]:
    raise ValueError("the split holds no examples; nothing to score.")
  out = {k: np.concatenate(v) for k, v in parts.items()}
  order = sorted(range(len(out["guid"])), key=lambda i: guid_sort_key(out["guid"][i]))
  return {k: v[order] for k, v in out.items()}


def score_split(logits_fn: Callable[[Dict[str, Any]], Any], data_dir: str,
                metadata: schema.DataMetadata, split: str, batch_size: int = DEFAULT_BATCH_SIZE,
                desc: str = "score") -> Dict[str, np.ndarray]:
  """score() over every example of `split`; a corrupted or truncated shard is named."""
  try:
    return score(logits_fn, split_dataset(data_dir, metadata, split, batch_size),
                 metadata.splits[split].num_examples, desc=desc)
  except tf.errors.DataLossError as e:
    raise records.corrupt_shard_error(data_dir, metadata, split, e) from e


def classifier_logits_fn(classifier) -> Callable:
  """features -> logits of a Keras BertClassifier (inference mode, no XLA:
  batch lengths vary, and each length would be compiled anew)."""

  @tf.function(reduce_retracing=True)
  def run(features):
    return classifier(features, training=False)["logits"]

  return lambda features: run(features).numpy()


def saved_model_logits_fn(path: str):
  """features -> log-probabilities of an exported model (its serve_features signature).

  Log-probabilities give the same argmax, softmax and loss as logits.
  Returns (fn, labels, bertline metadata).
  """

  loaded = tf.saved_model.load(path)
  if schema.SIGNATURE_FEATURES not in loaded.signatures:
    raise ValueError(f"{path} has no {schema.SIGNATURE_FEATURES!r} signature; export it with "
                     "`bertline export`.")
  signature = loaded.signatures[schema.SIGNATURE_FEATURES]
  meta, labels = ExportDir(path).metadata(), ExportDir(path).labels()
  multi_label = bool((meta.get("data_metadata") or {}).get("multi_label"))

  def run(features):
    probs = signature(**{k: tf.cast(v, tf.int32) for k, v in features.items()})["probabilities"]
    probs = np.clip(probs.numpy().astype(np.float64), 1e-30, 1.0)
    if multi_label:  # each label's sigmoid: its logit again
      return np.log(probs) - np.log(np.maximum(1.0 - probs, 1e-30))
    return np.log(probs)

  run.loaded = loaded  # keep the resources alive
  return run, labels, meta


def tflite_logits_fn(path: str):
  """features -> log-probabilities of a quantized export (its model.tflite).

  Returns (fn, labels, bertline metadata).
  """

  model = quantize.TFLiteModel(path)
  meta = ExportDir(path).metadata()

  def run(features):
    probs = model.serve_features(*(np.asarray(features[name]) for name in
                                   schema.SEQUENCE_FEATURES))[schema.OUTPUT_PROBABILITIES]
    return np.log(np.maximum(probs.astype(np.float64), 1e-30))

  run.loaded = model
  return run, model.labels, meta


def model_logits_fn(model: str, which: str = "best"):
  """(logits_fn, labels, vocab_sha256 or None, description) for a model_dir or an export."""
  if quantize.is_tflite(model):
    fn, labels, meta = tflite_logits_fn(model)
    vocab_sha = (meta.get("data_metadata") or {}).get("vocab_sha256")
    return fn, labels, vocab_sha, {"kind": "tflite", "path": model,
                                   "quantize": (meta.get("quantization") or {}).get("mode")}
  if is_saved_model(model):
    fn, labels, meta = saved_model_logits_fn(model)
    vocab_sha = (meta.get("data_metadata") or {}).get("vocab_sha256")
    return fn, labels, vocab_sha, {"kind": "saved_model", "path": model}
  loaded = load_model_dir(model, which)
  return (classifier_logits_fn(loaded.classifier), loaded.labels,
          loaded.data_metadata.vocab_sha256, {"kind": "model_dir", "path": model})


def label_thresholds(model: str, labels: List[str]) -> List[float]:
  """A multi-label model's per-label thresholds: an export's (its metadata) or a model_dir's."""
  if is_export(model):
    thresholds = ExportDir(model).metadata().get("thresholds")
    if not thresholds:
      raise ValueError(f"{model} records no label thresholds: export it again with this version "
                       "of `bertline export`.")
    return [float(t) for t in thresholds]
  path = fileio.join(model, schema.THRESHOLDS_FILE)
  if not fileio.exists(path):
    raise FileNotFoundError(
        f"{path} not found: a multi-label model's label thresholds are chosen when `bertline "
        "train` finishes; run the same train command again (it resumes, sees it is done, and "
        "chooses them).")
  record = json.loads(fileio.read_text(path))
  if record.get("labels") != list(labels):
    raise ValueError(f"{path} is for labels {record.get('labels')}, not the model's {labels}; "
                     "re-run `bertline train` to choose them again.")
  return [float(t) for t in record["thresholds"]]


def check_same_vocab(model_vocab_sha: Optional[str], metadata: schema.DataMetadata, model: str,
                     data_dir: str) -> None:
  if model_vocab_sha and metadata.vocab_sha256 and model_vocab_sha != metadata.vocab_sha256:
    raise ValueError(
        f"vocab mismatch: {data_dir} was tokenized with a vocab (sha256 "
        f"{metadata.vocab_sha256[:12]}…) other than {model}'s ({model_vocab_sha[:12]}…). "
        "Preprocess the data with the model's vocab.txt.")
