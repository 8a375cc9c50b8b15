"""Quantized exports: the classifier as TensorFlow Lite, float16 or int8.

    bertline export --model-dir work/model --export-dir work/export --quantize int8

writes work/export/<version>/ as

    model.tflite   the classifier, signature serve_features (input_ids,
                   input_mask, segment_ids -> probabilities, label_id), in
                   place of saved_model.pb + variables/
    tokenizer/     a SavedModel, signature text_to_features: the export's own
                   in-graph tokenizer (text_a [, text_b] -> the three id
                   tensors), TensorFlow + tensorflow-text ops
    assets/, assets.extra/   as for a float export (warmup requests: predict)

`TFLiteModel` serves it: serve_features straight from model.tflite, and
serving_default (raw text -> probabilities, label_id, label) as tokenizer/
then model.tflite — the same signature names and outputs as the float
export. `bertline predict / score / evaluate --model VERSION_DIR` load it.
It serves a batch in groups of similar length (`length_groups`), each padded
only to its own longest: the same answers, bit for bit here, for a fraction
of the padding (raw text, batch 32: 2.29x transformers' bf16 with the groups,
1.60x without, in two quiet runs; BENCHMARKS.md).

Why TensorFlow Lite (benchmarks/compress.py, BENCHMARKS.md): its dynamic-
range int8 kernels (int8 weights per channel, activations quantized per
token at run time, int8 GEMMs accumulating in int32) ran the fine-tuned
MiniLM at 3.0x TensorFlow's float32 graph (raw text, batch 32) on this
2-core AVX-512 CPU, at a third of the size, with only builtin ops, in the runtime the tensorflow
package already ships. The tokenizer is not in model.tflite: its string ops
need TF Lite's Select-TF-ops (Flex) delegate, which TensorFlow 2.21's Python
interpreter does not link ("Select TensorFlow op(s) ... not supported by this
interpreter", seen here), so it stays a (small) SavedModel beside it.
TF Serving and Vertex AI's TensorFlow images serve SavedModels, not this:
push refuses --vertex-model for a quantized version.

Modes:
* none: the float32 SavedModel (the default; nothing here).
* float16: weights stored as float16 (half the size), computed in float32.
* int8: dynamic-range quantization of the dense layers' weights; embeddings,
  LayerNorm and softmax stay float32.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tokenizer's ops)
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from bertline import fileio, schema
from bertline.export_dir import ExportDir
from bertline.exporter.config import QUANTIZE_MODES

MODES = QUANTIZE_MODES  # declared with export's settings (exporter/config.py)
TOKENIZER_DIR = schema.TOKENIZER_DIR
TOKENIZER_SIGNATURE = "text_to_features"


def is_tflite(path: str) -> bool:
  """Whether `path` is a quantized export version (model.tflite, no saved_model.pb)."""
  return ExportDir(path).is_tflite()


def _frozen_features_module(saved_model_dir: str):
  """A variable-free SavedModel module with the export's serve_features signature.

  The TF Lite converter leaves a Keras 3 model's resource variables
  uninitialised when it reads the SavedModel itself (outputs NaN, weights
  missing from the file: seen here), so the signature is frozen first (weights
  become constants) and re-saved under its name.
  """

  loaded = tf.saved_model.load(saved_model_dir)
  signature = loaded.signatures[schema.SIGNATURE_FEATURES]
  names = list(schema.SEQUENCE_FEATURES)
  frozen = convert_variables_to_constants_v2(signature)
  # The classifier's outputs only: `label` (a string gather) is not a TF Lite builtin.
  keys = [k for k in signature.structured_outputs if k != schema.OUTPUT_LABEL]

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in names],
               autograph=False)
  def serve_features(input_ids, input_mask, segment_ids):
    flat = frozen(input_ids, input_mask, segment_ids)
    out = tf.nest.pack_sequence_as(signature.structured_outputs, flat)
    return {k: out[k] for k in keys}

  module = tf.Module()
  module.serve_features = serve_features
  return module, serve_features.get_concrete_function()


def convert(saved_model_dir: str, mode: str) -> bytes:
  """The TF Lite flatbuffer of an export's serve_features signature, quantized by `mode`."""

  if mode not in MODES or mode == "none":
    raise ValueError(f"--quantize {mode!r}: choose float16 or int8 (none exports the float32 "
                     "SavedModel)")
  module, concrete = _frozen_features_module(saved_model_dir)
  with tempfile.TemporaryDirectory(prefix="bertline-tflite-") as tmp:
    tf.saved_model.save(module, tmp, signatures={schema.SIGNATURE_FEATURES: concrete})
    converter = tf.lite.TFLiteConverter.from_saved_model(
        tmp, signature_keys=[schema.SIGNATURE_FEATURES])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
      converter.target_spec.supported_types = [tf.float16]
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return converter.convert()


def save_tokenizer(module, path: str) -> None:
  """Saves the serving module's text -> features function as its own SavedModel."""

  holder = tf.Module()
  holder.tokenizer = module.tokenizer
  holder.text_to_features = module.text_to_features
  tf.saved_model.save(holder, path, signatures={
      TOKENIZER_SIGNATURE: module.text_to_features.get_concrete_function()})


def _interpreter(content: bytes, num_threads: int):
  with warnings.catch_warnings():
    # tf.lite.Interpreter's deprecation notice: LiteRT's (ai-edge-litert) runs the same
    # file; TensorFlow 2.21 still ships this one, so nothing more is installed.
    warnings.simplefilter("ignore")
    return tf.lite.Interpreter(model_content=content, num_threads=num_threads)


# What one more interpreter call is taken to cost, in padded tokens' worth of work: of 0, 8,
# 16, 24, 48 and 96, 24 and 48 served compress.py's 48 tweet batches fastest with the teacher
# int8 on the 2-core CPU, in probes of serve_features alone (about 1.6x one padded batch;
# 0, a group per length, lost a third of that to the calls).
GROUP_OVERHEAD_TOKENS = 24


def length_groups(lengths: np.ndarray, overhead_tokens: int = GROUP_OVERHEAD_TOKENS
                  ) -> List[np.ndarray]:
  """A batch's row indices, split into groups of similar length, shortest first.

  A batch padded to its longest text pays for every padding token in every
  dense layer: 32 tweets of 10 to 47 tokens compute 32 x 47 token rows for
  perhaps half as many real ones. Served in groups, each padded only to its
  own longest, the padding mostly goes; each group costs one interpreter
  call more. The split minimises rows x longest summed over the groups, plus
  `overhead_tokens` per group, exactly (a dynamic programme over the rows
  sorted by length: the best groups of a sorted batch are contiguous runs).
  """
  lengths = np.asarray(lengths).reshape(-1)
  order = np.argsort(lengths, kind="stable")
  ordered = np.maximum(lengths[order], 1)
  n = len(ordered)
  cost = [0.0] + [float("inf")] * n
  cut = [0] * (n + 1)
  for end in range(1, n + 1):
    longest = float(ordered[end - 1])
    for start in range(end):
      c = cost[start] + (end - start) * longest + overhead_tokens
      if c < cost[end]:
        cost[end], cut[end] = c, start
  groups = []
  end = n
  while end > 0:
    groups.append(order[cut[end]:end])
    end = cut[end]
  return groups[::-1]


class TFLiteModel:
  """A quantized export version, called like a loaded SavedModel's signatures.

      model = TFLiteModel("work/export/3")
      model.signatures["serving_default"](text_a=tf.constant(["great phone"]))
      model.signatures["serve_features"](input_ids=..., input_mask=..., segment_ids=...)

  Outputs are numpy arrays. One interpreter, called under a lock (TF Lite
  interpreters are not thread-safe); any batch size and length (the
  signature runner resizes its inputs).
  """

  def __init__(self, path: str, num_threads: Optional[int] = None):

    self.path = path
    version = ExportDir(path)
    self._interpreter = _interpreter(fileio.read_bytes(version.tflite_file),
                                     num_threads or os.cpu_count() or 1)
    self._features = self._interpreter.get_signature_runner(schema.SIGNATURE_FEATURES)
    self._tokenizer = tf.saved_model.load(version.tokenizer_dir)
    self._to_features = self._tokenizer.signatures[TOKENIZER_SIGNATURE]
    self.text_inputs = sorted(self._to_features.structured_input_signature[1])
    self.labels = version.labels()
    self._lock = threading.Lock()
    self.group_overhead_tokens = GROUP_OVERHEAD_TOKENS
    self.signatures = {schema.SIGNATURE_FEATURES: self.serve_features,
                       schema.SIGNATURE_TEXT: self.serve_text}

  def serve_features(self, input_ids, input_mask, segment_ids) -> Dict[str, np.ndarray]:
    feeds = {schema.INPUT_IDS: input_ids, schema.INPUT_MASK: input_mask,
             schema.SEGMENT_IDS: segment_ids}
    feeds = {k: np.asarray(v, np.int32) for k, v in feeds.items()}
    lengths = feeds[schema.INPUT_MASK].sum(axis=1)
    out: Dict[str, np.ndarray] = {}
    with self._lock:
      # An empty batch is one call with no rows, as before grouping (the outputs' shapes).
      for rows in (length_groups(lengths, self.group_overhead_tokens)
                   or [np.arange(0)]):
        # Each group cut to its own longest real sequence: exact (the mask hides the
        # rest, and the int8 kernels quantize each token's activations on their own).
        length = max(int(lengths[rows].max(initial=0)), 1)
        group = {k: np.ascontiguousarray(v[rows, :length]) for k, v in feeds.items()}
        # Copied into the batch's own row order before the next call reuses the
        # interpreter's output buffers.
        for k, v in self._features(**group).items():
          if k not in out:
            out[k] = np.empty((len(lengths),) + v.shape[1:], v.dtype)
          out[k][rows] = v
    out[schema.OUTPUT_LABEL] = np.array(
        [self.labels[i].encode("utf-8") for i in out[schema.OUTPUT_LABEL_ID]], dtype=object)
    return out

  def serve_text(self, text_a, text_b=None) -> Dict[str, np.ndarray]:
    args = {schema.SERVING_TEXT_A: tf.convert_to_tensor(text_a, tf.string)}
    if text_b is not None:
      args[schema.SERVING_TEXT_B] = tf.convert_to_tensor(text_b, tf.string)
    features = self._to_features(**args)
    return self.serve_features(*(features[name].numpy() for name in schema.SEQUENCE_FEATURES))


def agreement(float_text, quantized: TFLiteModel, texts: List[Any],
              has_text_b: bool) -> Dict[str, Any]:
  """How far the quantized classifier is from the float32 serving_default on `texts`.

  Raises AssertionError when the quantized version does not answer one row per text.
  """

  args = {schema.SERVING_TEXT_A: tf.constant([a for a, _ in texts])}
  if has_text_b:
    args[schema.SERVING_TEXT_B] = tf.constant([b or "" for _, b in texts])
  want = float_text(**args)[schema.OUTPUT_PROBABILITIES].numpy()
  got = quantized.serve_text(**args)[schema.OUTPUT_PROBABILITIES]
  if got.shape != want.shape:
    raise AssertionError(f"quantized export {quantized.path} answered {list(got.shape)} for "
                         f"{list(want.shape)} probabilities")
  return {"examples": len(texts),
          "max_abs_probability_diff": float(np.abs(got - want).max()),
          "same_label": float(np.mean(got.argmax(-1) == want.argmax(-1)))}
