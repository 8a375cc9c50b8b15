"""bertline's own model_dirs: model_config.json beside object-based (TF2) checkpoints.

The weights are read by restoring the checkpoint into a twin model built from
the model_dir's config (a classifier when the checkpoint has a head), so the
names are whatever `modeling` calls them today; the restore must match every
object the twin has.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import tensorflow as tf

from bertline import fileio, schema
from bertline.model import modeling, pretrainer
from bertline.model.checkpoints import google
from bertline.model.checkpoints.common import VOCAB_NAMES, PretrainedFiles, Tensors, first_existing

KIND = "bertline"
# Object-based checkpoints carry their object graph; TF1 name-based ones do not.
OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def model_dir_of(path: str) -> Optional[str]:
  """The model_dir a bertline checkpoint path belongs to (itself or 1-2 levels up)."""
  d = path
  for _ in range(3):
    if fileio.exists(fileio.join(d, schema.MODEL_CONFIG_FILE)):
      return d
    d = os.path.dirname(d.rstrip("/"))
  return None


def resolve_dir(directory: str) -> Optional[PretrainedFiles]:
  """The model_dir's best checkpoint (else its latest); None when it is no model_dir."""
  if not fileio.exists(fileio.join(directory, schema.MODEL_CONFIG_FILE)):
    return None
  prefix = (google.latest_in(fileio.join(directory, schema.BEST_SUBDIR))
            or google.latest_in(fileio.join(directory, schema.CHECKPOINT_SUBDIR))
            or google.latest_in(directory))
  if prefix is None:
    raise FileNotFoundError(
        f"{directory} is a bertline model_dir without a checkpoint (nothing in "
        f"{schema.BEST_SUBDIR}/ or {schema.CHECKPOINT_SUBDIR}/); train it first.")
  return PretrainedFiles(KIND, prefix, fileio.join(directory, schema.MODEL_CONFIG_FILE),
                         first_existing(directory, VOCAB_NAMES), directory)


def resolve_prefix(prefix: str, directory: str, source: Optional[str]) -> PretrainedFiles:
  model_dir = model_dir_of(directory)
  if model_dir is None:
    raise FileNotFoundError(
        f"{prefix} is an object-based (TF2) checkpoint without the {schema.MODEL_CONFIG_FILE} "
        "of a bertline model_dir beside it or above it; pass the model_dir instead.")
  return PretrainedFiles(KIND, prefix, fileio.join(model_dir, schema.MODEL_CONFIG_FILE),
                         first_existing(model_dir, VOCAB_NAMES), source or prefix)


def complete_config(kind: str, d: Dict[str, Any]) -> Dict[str, Any]:
  """bertline's model_config.json already holds the resolved config."""
  return d


def read(files: PretrainedFiles) -> Tensors:
  """Restores the checkpoint into a twin model and reads its weights by name."""
  config = files.model_config()
  shape_map = google.variable_shapes(files.weights)
  head = [s for n, s in shape_map.items() if n.startswith("model/head/bias/")]
  if head:  # a fine-tuned classifier's model_dir
    twin = modeling.BertClassifier(config, num_labels=int(head[0][0]))
  elif any(n.startswith("model/mlm/") for n in shape_map):  # `bertline pretrain`'s
    twin = pretrainer.BertPretrainer(
        config, pairs=any(n.startswith("model/pair/") for n in shape_map))
  else:
    twin = modeling.BertEncoder(config)
  status = tf.train.Checkpoint(model=twin).read(files.weights)
  status.expect_partial()
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(f"{files.weights} does not match {files.config_file}: {e}") from e
  tensors = Tensors()
  for name, variable in twin.weight_map().items():
    array = variable.numpy()
    tensors.add(name, name, array.shape, lambda a=array: a, transpose=False)
  return tensors
