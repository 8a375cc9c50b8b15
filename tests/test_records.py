"""bertline/records.py: batches parsed and cut to their longest real sequence exactly, and a
truncated shard named with the fix."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertline import records, schema


def test_a_batch_is_cut_to_its_longest_real_sequence_and_nothing_real_is_lost(tweets_data):
  metadata = schema.read_metadata(tweets_data["data"])
  spec = schema.feature_spec(metadata.max_seq_length)
  files = metadata.split_files(tweets_data["data"], "dev")
  shorter = 0
  for raw in tf.data.TFRecordDataset(files).batch(2).take(40):
    full = records.parse_batch(raw, spec)
    cut = records.trim_batch(full)
    mask = full[schema.INPUT_MASK].numpy()
    length = mask.sum(1).max()
    assert full[schema.INPUT_IDS].shape[1] == metadata.max_seq_length >= length
    shorter += int(length < metadata.max_seq_length)
    for name in schema.SEQUENCE_FEATURES:
      assert cut[name].dtype == tf.int32 and cut[name].shape[1] == length
      np.testing.assert_array_equal(cut[name].numpy(), full[name].numpy()[:, :length])
      assert not full[name].numpy()[:, length:].any()  # only padding was cut
    assert cut[schema.LABEL_IDS].shape == (len(mask),)  # scalars squeezed to [b]
  assert shorter >= 3  # tweets shorter than max_seq_length: some pairs are cut
  padding = {name: tf.zeros([2, 8], tf.int32) for name in schema.SEQUENCE_FEATURES}
  assert records.trim_batch(padding)[schema.INPUT_IDS].shape == (2, 1)  # still has a shape


def test_a_truncated_shard_is_found_and_named_with_the_fix(tweets_data, tmp_path):
  data = str(tmp_path / "data")
  shutil.copytree(tweets_data["data"], data)
  metadata = schema.read_metadata(data)
  files = metadata.split_files(data, "dev")
  assert records.find_corrupt_shards(files, metadata.compression) == []
  with open(files[1], "r+b") as f:
    f.truncate(f.seek(0, 2) - 7)
  (bad,) = records.find_corrupt_shards(files, metadata.compression)
  assert bad.startswith(files[1] + ": ")
  error = records.corrupt_shard_error(data, metadata, "dev", RuntimeError("read failed"))
  assert str(error).startswith(f"corrupted or truncated TFRecord shard in {data} (dev): "
                               f"{files[1]}: ")
  assert str(error).endswith("Re-run `bertline preprocess` for this data (or restore the file "
                             "from where it was copied).")
  with pytest.raises(tf.errors.DataLossError):
    for _ in tf.data.TFRecordDataset(files[1]):
      pass
