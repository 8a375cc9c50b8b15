"""The training and eval input pipelines on a real preprocess output."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertline import records as records_lib, schema
from bertline.trainer import inputs
from tests.records import read_split


def _raw_examples(records, split):
  """{input_ids as a tuple: label id} of every example of `split`."""
  return {tuple(ex[schema.INPUT_IDS]): int(ex[schema.LABEL_IDS][0])
          for _, ex in read_split(records, split).values()}


def _key(batch, i):
  ids = batch[schema.INPUT_IDS][i].numpy()
  return ids


def test_train_batches_are_trimmed_int32_and_seeded(lang_records):
  metadata = schema.read_metadata(lang_records)
  raw = _raw_examples(lang_records, "train")
  ds = inputs.train_dataset(lang_records, metadata, batch_size=4, seed=7,
                            options=inputs.InputOptions(shuffle_buffer=1000))
  batches = list(ds.take(84))  # 320 examples: 80 batches per pass, so into epoch 2
  lengths = set()
  seen_epoch1 = []
  for b in batches:
    assert all(b[k].dtype == tf.int32 for k in b)
    mask = b[schema.INPUT_MASK].numpy()
    # Trimmed to the longest real sequence of the batch, no shorter.
    assert mask.shape[1] == mask.sum(axis=1).max()
    lengths.add(mask.shape[1])
    for i in range(4):
      ids = b[schema.INPUT_IDS][i].numpy()
      full = tuple(np.pad(ids, (0, metadata.max_seq_length - len(ids))))
      assert raw[full] == int(b[schema.LABEL_IDS][i])  # same example, same label
      seen_epoch1.append(full)
  assert len(lengths) > 1 and max(lengths) <= metadata.max_seq_length
  # The first pass visits every example once (shuffled; 320 = 20 full batches).
  assert sorted(seen_epoch1[:320]) == sorted(raw)
  assert seen_epoch1[:16] != sorted(seen_epoch1[:16])
  # Epoch 2 is reshuffled, and the same seed gives the same stream.
  assert seen_epoch1[320:336] != seen_epoch1[:16]
  again = list(inputs.train_dataset(lang_records, metadata, 4, seed=7,
                                    options=inputs.InputOptions(shuffle_buffer=1000)).take(84))
  for a, b in zip(batches, again):
    np.testing.assert_array_equal(a[schema.INPUT_IDS], b[schema.INPUT_IDS])
  other = [b[schema.LABEL_IDS].numpy().tolist()
           for b in inputs.train_dataset(lang_records, metadata, 4, seed=8).take(20)]
  assert other != [b[schema.LABEL_IDS].numpy().tolist() for b in batches[:20]]


def test_bucketing_batches_similar_lengths(lang_records):
  metadata = schema.read_metadata(lang_records)
  opts = inputs.InputOptions(shuffle_buffer=1000, bucket_boundaries=(16, 32))
  plain = inputs.train_dataset(lang_records, metadata, 8, seed=1,
                               options=inputs.InputOptions(shuffle_buffer=1000))
  bucketed = inputs.train_dataset(lang_records, metadata, 8, seed=1, options=opts)
  padded = lambda ds: sum(int(tf.size(b[schema.INPUT_MASK])) for b in ds.take(30))
  for b in bucketed.take(30):
    n = b[schema.INPUT_MASK].numpy().sum(axis=1)
    assert b[schema.INPUT_MASK].shape[0] == 8
    # All of a batch's lengths fall in one bucket: [0,16), [16,32) or [32, 64].
    assert len({int(np.searchsorted([16, 32], x, side="right")) for x in n}) == 1
  assert padded(bucketed) < padded(plain)


def test_eval_covers_every_example_once_padding_the_last_batch(lang_records):
  metadata = schema.read_metadata(lang_records)
  raw = _raw_examples(lang_records, "dev")
  assert len(raw) == 72
  batches = list(inputs.eval_dataset(lang_records, metadata, batch_size=10))
  assert len(batches) == 8  # 72 -> 7 full batches and one of 2 real + 8 padding
  real = []
  for b in batches:
    assert b[schema.LABEL_IDS].shape[0] == 10
    for i in range(10):
      if int(b[schema.IS_REAL_EXAMPLE][i]):
        ids = b[schema.INPUT_IDS][i].numpy()
        real.append(tuple(np.pad(ids, (0, metadata.max_seq_length - len(ids)))))
      else:
        assert b[schema.INPUT_MASK][i].numpy().sum() == 0
  assert sorted(real) == sorted(raw)
  assert batches[-1][schema.IS_REAL_EXAMPLE].numpy().tolist() == [1, 1] + [0] * 8


def test_truncated_shard_is_named(lang_records, tmp_path):
  copy = str(tmp_path / "records")
  shutil.copytree(lang_records, copy)
  metadata = schema.read_metadata(copy)
  victim = metadata.split_files(copy, "train")[1]
  with open(victim, "r+b") as f:
    size = os.path.getsize(victim)
    f.truncate(size - 7)
  ds = inputs.train_dataset(copy, metadata, 16, seed=0)
  with pytest.raises(tf.errors.DataLossError):
    for _ in ds.take(40):
      pass
  try:
    for _ in ds.take(40):
      pass
  except tf.errors.DataLossError as e:
    err = records_lib.corrupt_shard_error(copy, metadata, "train", e)
  assert victim in str(err) and "truncated" in str(err)
  assert metadata.split_files(copy, "train")[0] not in str(err)
