"""The reference the evaluator's tests check against: the Keras model run directly."""

from __future__ import annotations

import tensorflow as tf

from bertline import schema


def keras_reference(model, data_dir, split):
  """guid -> (label_id, probabilities float32) by running the Keras model on full-length rows."""
  metadata = schema.read_metadata(data_dir)
  spec = schema.feature_spec(metadata.max_seq_length)
  out = {}
  for raw in tf.data.TFRecordDataset(metadata.split_files(data_dir, split)).batch(100):
    ex = tf.io.parse_example(raw, spec)
    feats = {k: tf.cast(ex[k], tf.int32) for k in schema.SEQUENCE_FEATURES}
    probs = model(feats, training=False)["probabilities"].numpy()
    for guid, label, p in zip(ex[schema.GUID].numpy()[:, 0], ex[schema.LABEL_IDS].numpy()[:, 0], probs):
      out[guid.decode()] = (int(label), p)
  return out
