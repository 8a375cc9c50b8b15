"""The batch serializer against the protobuf library's own tf.train.Example."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bertline.preprocessing import tfexample


def _proto(ints, guid):
  feats = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in v]))
           for k, v in ints.items()}
  feats["guid"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[guid]))
  return tf.train.Example(features=tf.train.Features(feature=feats))


def test_records_parse_to_the_same_example_as_protobuf_builds():
  rng = np.random.default_rng(7)
  batch = 64
  ids = rng.integers(0, 120_000, size=(batch, 40))
  ids[:, 25:] = 0
  # Every varint width, up to the 10-byte maximum of a non-negative int64.
  edges = np.array([[0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**35, 2**63 - 1]] * batch)
  ints = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int64),
          "label_ids": rng.integers(0, 3, size=(batch, 1)), "edges": edges,
          "long": rng.integers(0, 200, size=(batch, 3000))}  # lengths past one varint byte
  guids = [f"train-{i}".encode() + bytes(range(i % 7)) + "é".encode() * i for i in range(batch)]
  records = tfexample.serialize_batch(ints, {"guid": guids})
  assert len(records) == batch
  for i, record in enumerate(records):
    expected = _proto({k: v[i] for k, v in ints.items()}, guids[i])
    assert tf.train.Example.FromString(record) == expected, f"example {i}"


def test_tf_parsing_reads_them():
  ids = np.array([[101, 2023, 102, 0], [101, 102, 0, 0]])
  records = tfexample.serialize_batch({"input_ids": ids}, {"guid": [b"a", b"b"]})
  parsed = tf.io.parse_example(tf.constant(records), {
      "input_ids": tf.io.FixedLenFeature([4], tf.int64),
      "guid": tf.io.FixedLenFeature([1], tf.string)})
  np.testing.assert_array_equal(parsed["input_ids"].numpy(), ids)
  assert parsed["guid"].numpy().ravel().tolist() == [b"a", b"b"]


def test_bad_shapes_and_values_are_refused():
  with pytest.raises(ValueError, match="non-negative"):
    tfexample.serialize_batch({"x": np.array([[-1]])}, {})
  with pytest.raises(ValueError, match=r"\[batch, n\] matrix"):
    tfexample.serialize_batch({"x": np.array([1, 2])}, {})
  with pytest.raises(ValueError, match="one row per example"):
    tfexample.serialize_batch({"x": np.array([[1], [2]])}, {"guid": [b"a"]})
