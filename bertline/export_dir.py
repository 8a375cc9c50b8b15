"""One exported version: the layout `bertline export` writes and every later reader reads.

Layout (TF Serving's: <export_dir>/<version>/; names from `bertline.schema`):

  saved_model.pb, variables/        the float32 SavedModel (raw-text signature)
  model.tflite, tokenizer/          instead, a quantized version (`export --quantize`)
  assets/vocab.txt, labels.txt      the graph's tokenizer vocabulary and label names
  assets/bertline_metadata.json     labels, model and train config, metrics, training key
  assets.extra/blessing.json        evaluate's blessing (push reads it)
  assets.extra/tf_serving_warmup_requests   PredictionLog records TF Serving replays
  _BERTLINE_PUSH_COMPLETE           in a registry: the push record, written last

`ExportDir` is to an export what `ModelDir` is to a training directory: the
one place these names are joined. No TensorFlow: push, score and the
pipeline's registry look-ups read it without loading a graph.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from bertline import fileio, schema


class ExportDir:
  """An exported (or pushed) version directory, local or gs://.

  Args:
    path: str. <export_dir>/<version>, or <registry>/<version>.

  Example:
    >>> version = ExportDir("work/export/1700000000")
    >>> version.labels()            # ['negative', 'neutral', 'positive']
    >>> version.metadata()["training_key"]
  """

  def __init__(self, path: str):
    self.path = path.rstrip("/")

  def file(self, *parts: str) -> str:
    return fileio.join(self.path, *parts)

  @property
  def version(self) -> str:
    return os.path.basename(self.path)

  # --- the files ---------------------------------------------------------------------
  @property
  def saved_model_pb(self) -> str:
    return self.file(schema.SAVED_MODEL_PB)

  @property
  def tflite_file(self) -> str:
    return self.file(schema.TFLITE_FILE)

  @property
  def tokenizer_dir(self) -> str:
    return self.file(schema.TOKENIZER_DIR)

  @property
  def metadata_file(self) -> str:
    return self.file(schema.ASSETS_DIR, schema.ASSET_METADATA)

  @property
  def vocab_file(self) -> str:
    return self.file(schema.ASSETS_DIR, schema.ASSET_VOCAB)

  @property
  def labels_file(self) -> str:
    return self.file(schema.ASSETS_DIR, schema.ASSET_LABELS)

  @property
  def blessing_file(self) -> str:
    return self.file(schema.ASSETS_EXTRA, schema.BLESSING_FILE)

  @property
  def warmup_file(self) -> str:
    return self.file(schema.ASSETS_EXTRA, schema.WARMUP_REQUESTS)

  @property
  def push_marker(self) -> str:
    return self.file(schema.PUSH_COMPLETE_MARKER)

  # --- what it is --------------------------------------------------------------------
  def is_saved_model(self) -> bool:
    return fileio.exists(self.saved_model_pb)

  def is_tflite(self) -> bool:
    """A quantized version: model.tflite beside its tokenizer SavedModel."""
    return fileio.exists(self.tflite_file)

  def is_export(self) -> bool:
    """Either kind of exported version."""
    return self.is_saved_model() or self.is_tflite()

  def is_pushed(self) -> bool:
    """A complete pushed version: push writes its marker last."""
    return fileio.exists(self.push_marker)

  # --- readers -----------------------------------------------------------------------
  def metadata(self) -> Dict[str, Any]:
    """bertline_metadata.json ({} for a version written without it)."""
    if not fileio.exists(self.metadata_file):
      return {}
    return json.loads(fileio.read_text(self.metadata_file))

  def labels(self) -> List[str]:
    """The label names, in label-id order."""
    return fileio.read_text(self.labels_file).splitlines()
