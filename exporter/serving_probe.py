"""Replays an exported version's warmup requests the way TF Serving does, in a clean process.

    python -I serving_probe.py EXPORT/<version>

Run by `serving_check.check` as a separate interpreter (`python -I`: no
PYTHONPATH, no user site, not the caller's directory) that refuses to import
bertline: what loads here needs only TensorFlow, the tensorflow-text ops
(which TF Serving links) and TF Serving's request protos, as a server would.
This file therefore imports nothing of bertline and must stay that way.

For each record of assets.extra/tf_serving_warmup_requests (a PredictionLog)
it does what TF Serving's warmup does at load — a version whose warmup fails
is never served — and checks each answer as TF Serving's handlers would:

* predict_log: the request's signature (serving_default when unnamed) is
  called with the request's tensors; every output must be there, and the
  probabilities finite, in [0, 1], summing to 1 over the classes, one row per
  input. A multi-label model (its serving_default outputs `predicted`) has one
  sigmoid per label: each in [0, 1], no sum, and `predicted` [rows, labels].
* classify_log: the signature's SignatureDef must have method
  tensorflow/serving/classify, one input `inputs` (DT_STRING) and outputs
  `classes` (DT_STRING) and/or `scores` (DT_FLOAT) — what TF Serving's
  classifier insists on — and is called with the request's tf.Examples.

A quantized version (`export --quantize`: model.tflite and tokenizer/, no
saved_model.pb) is replayed as bertline serves it: each predict request on
serving_default goes through tokenizer/'s text_to_features (a SavedModel),
then model.tflite's serve_features in TF Lite's interpreter; the same
probability checks apply, and a classify request is refused (model.tflite has
no Classify signature).

Prints one JSON line: {"passed": bool, "reason": str, "requests": int, ...}.
"""

import importlib.abc
import json
import os
import sys
import time

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving reads no more than this many
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
DEFAULT_SIGNATURE = "serving_default"
TFLITE = "model.tflite"
TOKENIZER = "tokenizer"


class _NoBertline(importlib.abc.MetaPathFinder):
  """Makes `import bertline` fail here, even where bertline is installed."""

  def find_spec(self, name, path=None, target=None):
    if name == "bertline" or name.startswith("bertline."):
      raise ImportError(f"{name} may not be imported by the serving check: a served model "
                        "must not need bertline")
    return None


class Failed(Exception):
  pass


def _signature_defs(path):
  from tensorflow.core.protobuf import saved_model_pb2
  sm = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    sm.ParseFromString(f.read())
  serve = [mg for mg in sm.meta_graphs if "serve" in mg.meta_info_def.tags]
  if not serve:
    raise Failed("saved_model.pb has no MetaGraph tagged 'serve': TF Serving cannot load it")
  return serve[0].signature_def


def _check_probabilities(np, probs, rows, where, multi_label=False):
  if probs.ndim != 2 or probs.shape[0] != rows:
    raise Failed(f"{where}: expected [{rows}, num_classes] scores, got shape {list(probs.shape)}")
  if not np.all(np.isfinite(probs)):
    raise Failed(f"{where}: the model returned non-finite scores ({probs.tolist()[:2]}...)")
  if np.any(probs < -1e-6) or np.any(probs > 1 + 1e-6):
    raise Failed(f"{where}: scores are not probabilities (outside [0, 1]: {probs.tolist()[:2]})")
  if not multi_label and not np.allclose(probs.sum(axis=-1), 1.0, atol=1e-4):
    raise Failed(f"{where}: scores are not probabilities (row sums {probs.sum(axis=-1)[:4]})")


def _is_multi_label(defs):
  """A multi-label export's serving_default answers `predicted` (one decision per label)."""
  return DEFAULT_SIGNATURE in defs and "predicted" in defs[DEFAULT_SIGNATURE].outputs


def _predict(tf, np, model, defs, request, index):
  name = request.model_spec.signature_name or DEFAULT_SIGNATURE
  where = f"warmup request {index} (predict, signature {name!r})"
  if name not in defs or name not in model.signatures:
    raise Failed(f"{where}: the SavedModel has no such signature; it has {sorted(defs)}")
  if defs[name].method_name != PREDICT_METHOD:
    raise Failed(f"{where}: signature method is {defs[name].method_name}, not {PREDICT_METHOD}")
  expected = set(defs[name].inputs)
  if set(request.inputs) != expected:
    raise Failed(f"{where}: inputs {sorted(request.inputs)} != the signature's {sorted(expected)}")
  inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
  rows = {int(v.shape[0]) for v in inputs.values()}
  if len(rows) != 1:
    raise Failed(f"{where}: inputs of different batch sizes {sorted(rows)}")
  out = model.signatures[name](**inputs)
  missing = set(defs[name].outputs) - set(out)
  if missing:
    raise Failed(f"{where}: outputs {sorted(missing)} missing from the answer")
  rows = rows.pop()
  if "probabilities" in out:
    _check_probabilities(np, out["probabilities"].numpy(), rows, where, _is_multi_label(defs))
  if "predicted" in out and tuple(out["predicted"].shape) != tuple(out["probabilities"].shape):
    raise Failed(f"{where}: predicted {list(out['predicted'].shape)} is not one decision per "
                 f"label of probabilities {list(out['probabilities'].shape)}")
  return name


def _classify(tf, np, model, defs, request, index):
  name = request.model_spec.signature_name or DEFAULT_SIGNATURE
  where = f"warmup request {index} (classify, signature {name!r})"
  if name not in defs or name not in model.signatures:
    raise Failed(f"{where}: the SavedModel has no such signature; it has {sorted(defs)}")
  sig = defs[name]
  if sig.method_name != CLASSIFY_METHOD:
    raise Failed(f"{where}: TF Serving's Classify API needs method {CLASSIFY_METHOD}; the "
                 f"signature has {sig.method_name}")
  if list(sig.inputs) != ["inputs"] or sig.inputs["inputs"].dtype != tf.string.as_datatype_enum:
    raise Failed(f"{where}: a classify signature takes exactly one DT_STRING input 'inputs'; "
                 f"it has {sorted(sig.inputs)}")
  outputs = set(sig.outputs)
  if not outputs & {"classes", "scores"} or outputs - {"classes", "scores"}:
    raise Failed(f"{where}: a classify signature's outputs are 'classes' and/or 'scores'; it "
                 f"has {sorted(outputs)}")
  if "classes" in outputs and sig.outputs["classes"].dtype != tf.string.as_datatype_enum:
    raise Failed(f"{where}: 'classes' must be DT_STRING")
  if "scores" in outputs and sig.outputs["scores"].dtype != tf.float32.as_datatype_enum:
    raise Failed(f"{where}: 'scores' must be DT_FLOAT")
  kind = request.input.WhichOneof("kind")
  if kind != "example_list":
    raise Failed(f"{where}: expected an example_list input, got {kind}")
  examples = [e.SerializeToString() for e in request.input.example_list.examples]
  if not examples:
    raise Failed(f"{where}: no examples")
  out = model.signatures[name](inputs=tf.constant(examples))
  if "scores" in out:
    _check_probabilities(np, out["scores"].numpy(), len(examples), where, _is_multi_label(defs))
  if "classes" in out and out["classes"].shape[0] != len(examples):
    raise Failed(f"{where}: {out['classes'].shape[0]} rows of classes for {len(examples)} "
                 "examples")
  return name


class _QuantizedModel:
  """tokenizer/ then model.tflite, behind the SavedModel calls _predict makes."""

  def __init__(self, tf, np, path):
    import warnings
    self._tf, self._np = tf, np
    self._tokenizer = tf.saved_model.load(os.path.join(path, TOKENIZER))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      with open(os.path.join(path, TFLITE), "rb") as f:
        interpreter = tf.lite.Interpreter(model_content=f.read())
    self._features = interpreter.get_signature_runner("serve_features")
    self._inputs = sorted(self._tokenizer.signatures["text_to_features"].structured_input_signature[1])
    self.signatures = {DEFAULT_SIGNATURE: self._serve_text}

  def _serve_text(self, **inputs):
    np = self._np
    features = self._tokenizer.signatures["text_to_features"](**inputs)
    feeds = {k: features[k].numpy().astype(np.int32) for k in
             ("input_ids", "input_mask", "segment_ids")}
    out = self._features(**feeds)
    return {k: self._tf.constant(v) for k, v in out.items()}


def _quantized_defs(model):
  """What _predict checks of a SignatureDef, for a quantized version's serving_default."""
  class Def:
    method_name = PREDICT_METHOD
    inputs = {name: None for name in model._inputs}
    outputs = {"probabilities": None, "label_id": None}
  return {DEFAULT_SIGNATURE: Def()}


def probe(path):
  start = time.time()
  warmup = os.path.join(path, WARMUP)
  if not os.path.isfile(warmup):
    raise Failed(f"{WARMUP} is missing: TF Serving would serve the version cold and nothing "
                 "checks it; re-export with `bertline export`")
  import numpy as np
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  (the tokenizer's ops, which TF Serving links)
  from tensorflow_serving.apis import prediction_log_pb2

  quantized = os.path.isfile(os.path.join(path, TFLITE))
  try:
    if quantized:
      model = _QuantizedModel(tf, np, path)
      defs = _quantized_defs(model)
    else:
      defs = _signature_defs(path)
      model = tf.saved_model.load(path, tags=["serve"])
  except Failed:
    raise
  except Exception as e:  # noqa: BLE001  Any load failure is the answer.
    what = f"{TOKENIZER}/ + {TFLITE}" if quantized else "the SavedModel"
    raise Failed(f"{what} does not load ({type(e).__name__}: "
                 f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''})") from e
  used = set()
  count = 0
  try:
    for index, record in enumerate(tf.data.TFRecordDataset(warmup)):
      if index >= MAX_WARMUP_RECORDS:
        raise Failed(f"{WARMUP} holds more than {MAX_WARMUP_RECORDS} records; TF Serving "
                     "reads only that many")
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      kind = log.WhichOneof("log_type")
      if kind == "predict_log":
        used.add(_predict(tf, np, model, defs, log.predict_log.request, index))
      elif kind == "classify_log" and quantized:
        raise Failed(f"warmup request {index} is a classify request; a quantized version "
                     f"({TFLITE}) has no Classify signature")
      elif kind == "classify_log":
        used.add(_classify(tf, np, model, defs, log.classify_log.request, index))
      else:
        raise Failed(f"warmup request {index} is a {kind}, which bertline exports never serve")
      count += 1
  except (tf.errors.OpError, RuntimeError, ValueError) as e:  # RuntimeError/ValueError: TF Lite
    raise Failed(f"replaying {WARMUP} failed ({type(e).__name__}: "
                 f"{(getattr(e, 'message', None) or str(e)).strip().splitlines()[0][:300]})") from e
  if not count:
    raise Failed(f"{WARMUP} holds no requests")
  return {"passed": True, "requests": count, "signatures": sorted(used),
          "reason": f"{count} warmup requests ({', '.join(sorted(used))}) answered by a clean "
                    f"process without bertline" + (f" ({TOKENIZER}/ + {TFLITE})" if quantized
                                                   else ""),
          "bertline_imported": "bertline" in sys.modules,
          "seconds": round(time.time() - start, 2)}


def main(argv):
  sys.meta_path.insert(0, _NoBertline())
  if len(argv) != 2:
    print(json.dumps({"passed": False, "reason": "usage: serving_probe.py EXPORT_VERSION_DIR"}))
    return 2
  try:
    result = probe(argv[1])
  except Failed as e:
    result = {"passed": False, "reason": str(e)}
  print(json.dumps(result))
  return 0 if result["passed"] else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv))
