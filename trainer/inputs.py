"""tf.data input pipelines over a `bertline preprocess` output directory.

The shards are found through metadata.json (`schema.read_metadata`) and parsed
by `bertline.records` with `schema.feature_spec`, so the reader can never
disagree with the writer, the evaluator or the serving graph.

Every batch is a dict of int32 tensors:

  input_ids, input_mask, segment_ids: [batch_size, L]
  label_ids, is_real_example:         [batch_size]

where L is the longest real sequence of the batch (`records.trim_batch`)
instead of max_seq_length, unless trimming is off (TPUs).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from bertline import records, schema

Batch = Dict[str, tf.Tensor]


@dataclasses.dataclass
class InputOptions:
  """How the training input is read.

  Attributes:
    shuffle_buffer: int. Examples in the shuffle buffer (BERT used 100;
      larger mixes better: the shards are written in no particular order).
    trim: bool. Trim each batch to its longest real sequence (off for TPUs,
      whose compiled programs need static shapes).
    bucket_boundaries: sequence lengths bounding length buckets: batches are
      then drawn from one bucket, so short sequences batch with short ones.
      Empty: no bucketing.
    cycle_length: int. Shards read in parallel.
  """

  shuffle_buffer: int = 10000
  trim: bool = True
  bucket_boundaries: Sequence[int] = ()
  cycle_length: int = 8


def _records(files: List[str], compression: str, cycle_length: int,
             shuffle_files_seed: Optional[int]) -> tf.data.Dataset:
  ds = tf.data.Dataset.from_tensor_slices(files)
  if shuffle_files_seed is not None and len(files) > 1:
    ds = ds.shuffle(len(files), seed=shuffle_files_seed, reshuffle_each_iteration=True)
  comp = schema.TF_COMPRESSION_TYPE[compression]
  return ds.interleave(
      lambda f: tf.data.TFRecordDataset(f, compression_type=comp),
      cycle_length=max(1, min(cycle_length, len(files))),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_dataset(data_dir: str, metadata: schema.DataMetadata, batch_size: int, seed: int,
                  options: Optional[InputOptions] = None, split: str = "train"
                  ) -> tf.data.Dataset:
  """Shuffled, repeated, batched training examples; the same order for the same seed.

  Args:
    data_dir: str. A preprocess output directory.
    metadata: its `schema.DataMetadata`.
    batch_size: int. Global batch size (split over replicas by tf.distribute).
    seed: int. Seeds the file and example shuffles (epoch k's order is a
      function of the seed and k).
    options: InputOptions.

  Returns:
    A dataset of `Batch` dicts, batches of exactly `batch_size` (the partial
    batch of each pass is dropped, as run_classifier does for training).
  """
  options = options or InputOptions()
  files = metadata.split_files(data_dir, split)
  spec = metadata.feature_spec(guid=False)
  ds = _records(files, metadata.compression, options.cycle_length, seed)
  ds = ds.shuffle(options.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat()
  if options.bucket_boundaries:
    ds = ds.map(lambda r: records.cast_parsed(tf.io.parse_single_example(r, spec)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    boundaries = sorted(int(b) for b in options.bucket_boundaries)
    ds = ds.bucket_by_sequence_length(
        lambda ex: tf.reduce_sum(ex[schema.INPUT_MASK]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        drop_remainder=True)
  else:
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda r: records.parse_batch(r, spec), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
  if options.trim:
    ds = ds.map(records.trim_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def pad_batch(batch: Batch, batch_size: int) -> Batch:
  """Pads a short last batch to `batch_size` with all-zero rows (is_real_example 0, and for
  pre-training no masks), so evaluation sees every example in full batches."""
  missing = batch_size - tf.shape(batch[schema.INPUT_IDS])[0]
  out = {}
  for name, value in batch.items():
    paddings = [[0, missing]] + [[0, 0]] * (len(value.shape) - 1)
    out[name] = tf.pad(value, paddings)
    out[name].set_shape([batch_size] + value.shape[1:].as_list())
  return out


def eval_dataset(data_dir: str, metadata: schema.DataMetadata, batch_size: int,
                 split: str = "dev", trim: bool = True) -> tf.data.Dataset:
  """Every example of `split` exactly once, in file order, in full batches.

  The last batch is padded with examples whose is_real_example is 0 instead
  of being dropped (run_classifier's TPU eval dropped it, "slightly WRONG" in
  its own words): weight metrics by is_real_example.
  """
  files = metadata.split_files(data_dir, split)
  spec = metadata.feature_spec(guid=False)
  ds = _records(files, metadata.compression, 1, None)
  ds = ds.batch(batch_size)
  ds = ds.map(lambda r: pad_batch(records.parse_batch(r, spec), batch_size),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if trim:
    ds = ds.map(records.trim_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
