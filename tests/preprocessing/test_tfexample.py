"""The in-graph record serializer against the protobuf library's own tf.train.Example."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import resources, schema
from bertline.preprocessing import features, tfexample, tokenization


def _proto(ints, guid):
  feats = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in v]))
           for k, v in ints.items()}
  feats["guid"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[guid]))
  return tf.train.Example(features=tf.train.Features(feature=feats))


def test_records_are_the_bytes_protobuf_serializes():
  rng = np.random.default_rng(7)
  batch = 64
  ids = rng.integers(0, 120_000, size=(batch, 40))
  ids[:, 25:] = 0
  # Every varint width, up to the 10 bytes of the largest and of any negative int64.
  edges = np.array([[0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**35, 2**63 - 1, -1,
                     -2**63]] * batch)
  ints = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int64),
          "label_ids": rng.integers(0, 3, size=(batch, 1)), "edges": edges,
          "long": rng.integers(0, 200, size=(batch, 3000))}  # lengths past one varint byte
  guids = [f"train-{i}".encode() + bytes(range(i % 7)) + "é".encode() * i for i in range(batch)]
  records = tfexample.serialize_examples({k: tf.constant(v) for k, v in ints.items()},
                                         {"guid": tf.constant(guids)}).numpy()
  assert records.shape == (batch,)
  for i, record in enumerate(records):
    expected = _proto({k: v[i] for k, v in ints.items()}, guids[i])
    assert tf.train.Example.FromString(record) == expected, f"example {i}"
    # Deterministic serialization writes map entries in key order, as these records do.
    assert record == expected.SerializeToString(deterministic=True), f"example {i}"


def test_tf_parsing_reads_them():
  ids = np.array([[101, 2023, 102, 0], [101, 102, 0, 0]])
  records = tfexample.serialize_examples({"input_ids": tf.constant(ids)},
                                         {"guid": tf.constant([b"a", b"b"])})
  parsed = tf.io.parse_example(records, {
      "input_ids": tf.io.FixedLenFeature([4], tf.int64),
      "guid": tf.io.FixedLenFeature([1], tf.string)})
  np.testing.assert_array_equal(parsed["input_ids"].numpy(), ids)
  assert parsed["guid"].numpy().ravel().tolist() == [b"a", b"b"]


def test_an_empty_batch_gives_no_records():
  records = tfexample.serialize_examples({"x": tf.zeros([0, 3], tf.int64)},
                                         {"guid": tf.zeros([0], tf.string)})
  assert records.shape == (0,)


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="rank"):
    tfexample.serialize_examples({"x": tf.constant([1, 2], tf.int64)}, {})
  with pytest.raises(ValueError, match="at least one feature"):
    tfexample.serialize_examples({}, {})
  with pytest.raises(ValueError, match="both as ints and as bytes"):
    tfexample.serialize_examples({"x": tf.zeros([1, 1], tf.int64)}, {"x": tf.constant([b"a"])})


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
def test_record_encoder_writes_what_training_reads(pair):
  """The records parse with the training reader's spec to the packed features, label and guid."""
  tok = tokenization.BertTokenizer(os.path.join(resources.minilm_dir(), "vocab.txt"), True)
  encode = tfexample.make_record_encoder(tok, 16, pair)
  texts = tf.constant(["Hello world!", "Ünïcödé text, much longer than sixteen tokens " * 3])
  text_inputs = (texts, texts[::-1]) if pair else (texts,)
  labels = tf.constant([2, 0], tf.int64)
  guids = tf.constant(["train-1", "train-2"])
  parsed = tf.io.parse_example(encode(*text_inputs, labels, guids), schema.feature_spec(16))
  packed = features.make_encoder(tok, 16, pair)(*text_inputs)
  for name in schema.SEQUENCE_FEATURES:
    np.testing.assert_array_equal(parsed[name].numpy(), packed[name].numpy(), err_msg=name)
  assert parsed[schema.LABEL_IDS].numpy().ravel().tolist() == [2, 0]
  assert parsed[schema.IS_REAL_EXAMPLE].numpy().ravel().tolist() == [1, 1]
  assert parsed[schema.GUID].numpy().ravel().tolist() == [b"train-1", b"train-2"]
