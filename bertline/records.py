"""Reading preprocess's tf.Examples back as int32 batches: one parser, one trim.

The trainer's input pipeline, the evaluator's scoring and the exported
serving graph all read the same records; these helpers are the one place
that turns them into model inputs, so no reader can disagree with another.

A parsed batch is a dict of int32 tensors (TPUs and XLA take int32;
tf.Example only stores int64):

  input_ids, input_mask, segment_ids: [batch_size, max_seq_length]
  label_ids, is_real_example:         [batch_size]   (when parsed)
  guid:                               string [batch_size] (when parsed)
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import tensorflow as tf

from bertline import schema


def cast_parsed(parsed: Dict[str, Any]) -> Dict[str, Any]:
  """tf.io.parse_example's output -> int32 features, scalars squeezed to [b] (a multi-label
  task's label_ids stay [b, num_labels]: the spec makes it wider than 1)."""
  out = {name: tf.cast(parsed[name], tf.int32) for name in schema.SEQUENCE_FEATURES}
  for name in schema.SCALAR_INT_FEATURES:
    if name in parsed:
      value = parsed[name]
      # [.., 1] -> [..]
      out[name] = tf.cast(tf.squeeze(value, -1) if value.shape[-1] == 1 else value, tf.int32)
  if schema.GUID in parsed:
    out[schema.GUID] = tf.squeeze(parsed[schema.GUID], -1)
  return out


def parse_batch(records, spec: Dict[str, Any]) -> Dict[str, Any]:
  """A batch of serialized tf.Examples -> cast_parsed features (spec: schema.feature_spec)."""
  return cast_parsed(tf.io.parse_example(records, spec))


def trim_batch(batch: Dict[str, Any]) -> Dict[str, Any]:
  """Cuts the sequence features of `batch` to its longest real sequence.

  Exact: positions past a sequence's mask are padding the model ignores, and
  real corpora are mostly far shorter than max_seq_length (attention cost
  grows with the square of the length). At least one position is kept, so an
  all-padding batch still has a shape.
  """
  length = tf.maximum(tf.reduce_max(tf.reduce_sum(batch[schema.INPUT_MASK], axis=1)), 1)
  out = dict(batch)
  for name in schema.SEQUENCE_FEATURES:
    out[name] = batch[name][:, :length]
  return out


def find_corrupt_shards(files: Sequence[str], compression: str) -> List[str]:
  """Reads each shard through; returns "file: error" for those that fail."""
  bad = []
  for path in files:
    try:
      for _ in tf.data.TFRecordDataset(path, compression_type=schema.TF_COMPRESSION_TYPE[
          compression]):
        pass
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
            tf.errors.OutOfRangeError) as e:
      bad.append(f"{path}: {e.message.splitlines()[0] if e.message else type(e).__name__}")
  return bad


def corrupt_shard_error(data_dir: str, metadata: schema.DataMetadata, split: str,
                        error: Exception) -> ValueError:
  """A ValueError naming the corrupted/truncated shard(s) behind a read `error`."""
  bad = find_corrupt_shards(metadata.split_files(data_dir, split), metadata.compression)
  where = "; ".join(bad) if bad else f"(no single shard fails on its own: {error})"
  return ValueError(
      f"corrupted or truncated TFRecord shard in {data_dir} ({split}): {where}. Re-run "
      "`bertline preprocess` for this data (or restore the file from where it was copied).")
