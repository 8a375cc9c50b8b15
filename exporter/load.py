"""An exported version, loaded and asked about raw text: what a program does with a model.

`bertline export` writes either a SavedModel or, quantized, a TF Lite
classifier beside a tokenizer SavedModel; both answer the same raw-text
signature (`serving_default`: text_a, text_b -> probabilities, label_id,
label). `Classifier` loads either, or the last version pushed under a
registry, and calls that signature on a batch of texts: the tokenizer is the
graph's own, so the answers are the served model's.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  Registers the in-graph tokenizer's ops (TF Serving links them).

from bertline import registry, schema
from bertline.exporter import quantize


class Prediction(NamedTuple):
  """One text's answer: the label (a multi-label model's: the tuple of labels called, those at
  or above their threshold), and the probability of each label by name."""
  label: Union[str, Tuple[str, ...]]
  probabilities: Dict[str, float]


class Classifier:
  """An exported (or pushed) version's raw-text signature, as a Python callable.

      clf = Classifier("registry/sentiment")      # the last pushed version
      clf(["what a day", "never again"])[0].label
  """

  def __init__(self, path: str):
    path = registry.resolve_version(path)
    self.path = path
    self.version = os.path.basename(path)
    if quantize.is_tflite(path):  # `export --quantize`: tokenizer/ then model.tflite
      self._model = quantize.TFLiteModel(path)
      wanted = self._model.text_inputs
    else:
      self._model = tf.saved_model.load(path)
      _, wanted = self._model.signatures[schema.SIGNATURE_TEXT].structured_input_signature
    self.pairs = schema.SERVING_TEXT_B in wanted
    self._signature = self._model.signatures[schema.SIGNATURE_TEXT]
    self.labels: List[str] = registry.pushed_metadata(path).get("labels") or []

  def outputs(self, text_a: Sequence[str], text_b: Optional[Sequence[str]] = None
              ) -> Dict[str, np.ndarray]:
    """The signature's own outputs for a batch: probabilities [b, n], label_id [b], label [b]."""
    if self.pairs and text_b is None:
      raise ValueError(f"{self.path} is a sentence-pair model: give text_b as well")
    inputs = {schema.SERVING_TEXT_A: tf.constant(list(text_a), tf.string)}
    if self.pairs:
      inputs[schema.SERVING_TEXT_B] = tf.constant(list(text_b), tf.string)
    return {k: np.asarray(v) for k, v in self._signature(**inputs).items()}

  def __call__(self, text_a: Sequence[str], text_b: Optional[Sequence[str]] = None
               ) -> List[Prediction]:
    out = self.outputs(text_a, text_b)
    if schema.OUTPUT_LABELS in out:  # multi-label: the called labels, then ""
      names = [tuple(x.decode("utf-8") for x in row if x) for row in out[schema.OUTPUT_LABELS]]
    else:
      names = [label.decode("utf-8") for label in out[schema.OUTPUT_LABEL]]
    labels = self.labels or [str(i) for i in range(out[schema.OUTPUT_PROBABILITIES].shape[-1])]
    return [Prediction(name, {label: float(p) for label, p in zip(labels, row)})
            for name, row in zip(names, out[schema.OUTPUT_PROBABILITIES])]
