"""Serving checked before push: TFX's InfraValidator, without a server to start.

Two halves:

* `write_warmup_requests` (called by `bertline export`): writes
  `assets.extra/tf_serving_warmup_requests`, PredictionLog records built with
  tensorflow-serving-api from real examples of the training data (the dev
  split's first rows, decoded back to text from their WordPiece ids). TF
  Serving replays them when it loads the version, so the first user request
  meets a warm model — and a version whose warmup fails is never served.
* `check` (called by `bertline push` before anything is copied): loads the
  version in a separate, clean interpreter that cannot import bertline
  (`serving_probe.py`) and replays those requests there, checking each answer
  as TF Serving's handlers would. `record` writes the outcome into the
  export's blessing (`assets.extra/blessing.json`) as one more check, so a
  version that fails is recorded as not blessed, with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2,
                                     prediction_log_pb2)

from bertline import fileio, schema
from bertline.export_dir import ExportDir
from bertline.exporter.config import DEFAULT_SERVING_TIMEOUT_S
from bertline.preprocessing import tokenization

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_probe.py")
DEFAULT_TIMEOUT_S = DEFAULT_SERVING_TIMEOUT_S  # declared with push's settings
# How many real examples the warmup requests carry: one batched predict
# request, one single-text predict request and one classify request over them.
DEFAULT_WARMUP_EXAMPLES = 8
WARMUP_SPLITS = ("dev", "train", "test")
CHECK_METRIC = "serving"


class ServingCheckFailed(ValueError):
  """The version did not serve its warmup requests in a clean process (exit 3: bad input)."""


@dataclasses.dataclass
class CheckResult:
  passed: bool
  reason: str
  requests: int = 0
  seconds: float = 0.0

  def to_record(self) -> Dict[str, Any]:
    """What the blessing keeps: no timing, so a re-check writes the same bytes."""
    return {"status": "passed" if self.passed else "failed", "reason": self.reason,
            "requests": self.requests}


# --- warmup requests (export) ---------------------------------------------------------

def warmup_texts(data_dir: str, metadata: schema.DataMetadata, vocab: List[str],
                 count: int = DEFAULT_WARMUP_EXAMPLES) -> List[Tuple[str, Optional[str]]]:
  """(text_a, text_b or None) of the first `count` examples of the first split there is.

  The texts are decoded from the preprocessed ids (the TSVs need not be at
  hand): real rows of the data the model was trained on.
  """

  split = next((s for s in WARMUP_SPLITS if metadata.splits.get(s)
                and metadata.splits[s].num_examples), None)
  if split is None:
    raise ValueError(f"{data_dir} holds no examples to build TF Serving's warmup requests from; "
                     "pass --warmup-data with a preprocess output of the model's task.")
  files = metadata.split_files(data_dir, split)
  spec = schema.feature_spec(metadata.max_seq_length, labels=False, guid=False)
  ds = tf.data.TFRecordDataset(files, compression_type=schema.TF_COMPRESSION_TYPE[
      metadata.compression]).take(count)
  texts = []
  for record in ds:
    ex = tf.io.parse_single_example(record, spec)
    mask = ex[schema.INPUT_MASK].numpy().astype(bool)
    ids = ex[schema.INPUT_IDS].numpy()[mask]
    segments = ex[schema.SEGMENT_IDS].numpy()[mask]
    text_a = tokenization.detokenize(ids[segments == 0], vocab)
    text_b = tokenization.detokenize(ids[segments == 1], vocab) if metadata.has_text_b else None
    texts.append((text_a, text_b))
  return texts


def _text_tensors(texts, has_text_b: bool) -> Dict[str, Any]:
  tensors = {schema.SERVING_TEXT_A: tf.make_tensor_proto(
      np.array([a.encode("utf-8") for a, _ in texts], dtype=object))}
  if has_text_b:
    tensors[schema.SERVING_TEXT_B] = tf.make_tensor_proto(
        np.array([(b or "").encode("utf-8") for _, b in texts], dtype=object))
  return tensors


def text_example(text_a: str, text_b: Optional[str]):
  """The tf.Example the classification signature reads: text_a (and text_b) as bytes."""
  feature = {schema.SERVING_TEXT_A: tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[text_a.encode("utf-8")]))}
  if text_b is not None:
    feature[schema.SERVING_TEXT_B] = tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[text_b.encode("utf-8")]))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def warmup_logs(texts: List[Tuple[str, Optional[str]]], has_text_b: bool,
                model_name: str = "bertline", classify: bool = True) -> List[Any]:
  """PredictionLog records: a batched and a single predict request, and a classify request."""

  def spec(signature):
    return model_pb2.ModelSpec(name=model_name, signature_name=signature)

  logs = []
  for batch in (texts, texts[:1]):
    request = predict_pb2.PredictRequest(model_spec=spec(schema.SIGNATURE_TEXT))
    for name, proto in _text_tensors(batch, has_text_b).items():
      request.inputs[name].CopyFrom(proto)
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)))
  if not classify:
    return logs
  request = classification_pb2.ClassificationRequest(
      model_spec=spec(schema.SIGNATURE_CLASSIFY),
      input=input_pb2.Input(example_list=input_pb2.ExampleList(
          examples=[text_example(a, b) for a, b in texts])))
  logs.append(prediction_log_pb2.PredictionLog(
      classify_log=prediction_log_pb2.ClassifyLog(request=request)))
  return logs


def write_warmup_requests(version_dir: str, texts: List[Tuple[str, Optional[str]]],
                          has_text_b: bool, classify: bool = True) -> str:
  """Writes <version_dir>/assets.extra/tf_serving_warmup_requests; returns its path."""
  if not texts:
    raise ValueError("no texts for the warmup requests")
  path = ExportDir(version_dir).warmup_file
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path) as writer:
    for log in warmup_logs(texts, has_text_b, classify=classify):
      writer.write(log.SerializeToString())
  return path


# --- the check (push) ---------------------------------------------------------------

def check(version_dir: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> CheckResult:
  """Replays the version's warmup requests in a clean interpreter; never raises for the model.

  The child is `python -I` (no PYTHONPATH, no user site packages, not this
  directory) started in an empty directory, and refuses to import bertline:
  it sees what a TF Serving container sees, the SavedModel and TensorFlow.
  """
  start = time.time()
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with tempfile.TemporaryDirectory(prefix="bertline-serving-check-") as cwd:
    try:
      proc = subprocess.run([sys.executable, "-I", PROBE, os.path.abspath(version_dir)],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s,
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
      return CheckResult(False, f"the clean serving process did not answer within {timeout_s:g} "
                         "s", seconds=round(time.time() - start, 2))
  seconds = round(time.time() - start, 2)
  lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
  try:
    answer = json.loads(lines[-1])
  except (IndexError, json.JSONDecodeError):
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return CheckResult(False, f"the clean serving process died (exit {proc.returncode}): "
                       f"{tail[-1][:300] if tail else 'no output'}", seconds=seconds)
  if answer.get("bertline_imported"):  # the blocker failed: never call that clean
    return CheckResult(False, "bertline was imported while serving: the check was not clean",
                       seconds=seconds)
  return CheckResult(bool(answer.get("passed")), str(answer.get("reason", "")),
                     int(answer.get("requests", 0)), seconds)


def record(version_dir: str, result: CheckResult, blessing: Optional[Dict[str, Any]]) -> str:
  """Adds the check to the export's blessing (assets.extra/blessing.json); returns its path.

  `blessing` is the evaluation blessing push read (None when pushing without
  one): a failed check makes the version not blessed, with the reason; a
  previous serving check's entry is replaced, not repeated.
  """
  base = dict(blessing) if blessing else {
      "blessed": False, "checks": [],
      "reasons": ["FAIL no evaluation blessing (pushed with --force, if at all)"]}
  checks = [c for c in base.get("checks", []) if c.get("metric") != CHECK_METRIC]
  reason = f"{'PASS' if result.passed else 'FAIL'} serving: {result.reason}"
  checks.append({"metric": CHECK_METRIC, "kind": "infra", "value": result.requests,
                 "bound": None, "passed": result.passed, "reason": reason})
  base["checks"] = checks
  base["reasons"] = [r for r in base.get("reasons", [])
                     if not r.startswith(("PASS serving:", "FAIL serving:"))] + [reason]
  base["blessed"] = bool(base.get("blessed")) and result.passed
  base["serving_check"] = result.to_record()
  path = ExportDir(version_dir).blessing_file
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fileio.write_json_atomic(path, base)
  return path
