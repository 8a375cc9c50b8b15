"""Serialized tf.train.Example records for a whole batch, as graph ops.

Building a `tf.train.Example` message per example and calling
SerializeToString() costs tens of microseconds of Python per example — as
much as tokenizing the text in graph — and, worse, it holds the GIL, so the
preprocess job's worker threads queued on it instead of using the cores.
Here the records are encoded with `tf.io.encode_proto`, one op per message
level for the whole batch, inside the same graph call that tokenizes: the
Python side only hands texts in and writes the bytes out.

Every record the preprocess job writes has the same layout: int64 sequences
and scalars, and one bytes guid. The map entries are written in key order,
so the bytes equal the protobuf library's deterministic serialization of the
same message (tests/preprocessing/test_tfexample.py).

Wire format, for reference:
  Example    { Features features = 1; }
  Features   { map<string, Feature> feature = 1; }   -- entries FeatureEntry {key = 1; value = 2}
  Feature    { BytesList bytes_list = 1; Int64List int64_list = 3; }
  Int64List  { repeated int64 value = 1 [packed]; }
  BytesList  { repeated bytes value = 1; }
"""

from __future__ import annotations

from typing import Dict

import tensorflow as tf

from bertline import schema
from bertline.preprocessing import features


def _encode(message_type: str, fields: Dict[str, tf.Tensor], sizes: tf.Tensor) -> tf.Tensor:
  """One message per row: fields name -> [batch, n] values, sizes int32 [batch, len(fields)]."""
  names = list(fields)
  return tf.io.encode_proto(sizes, [fields[n] for n in names], names, f"tensorflow.{message_type}")


def _sizes(batch: tf.Tensor, value=1, fields: int = 1) -> tf.Tensor:
  """encode_proto's sizes: `value` values of each of `fields` fields, in every row."""
  return tf.fill(tf.stack([batch, fields]), value)


def serialize_examples(int_features: Dict[str, tf.Tensor],
                       bytes_features: Dict[str, tf.Tensor]) -> tf.Tensor:
  """Serialized tf.train.Example of each example of a batch.

  Args:
    int_features: name -> int64 [batch, n] (n may be 1, and may differ by name).
    bytes_features: name -> string [batch] (one value per example).
  Returns:
    string [batch]: one serialized tf.train.Example per row.
  """
  if not int_features and not bytes_features:
    raise ValueError("an Example needs at least one feature")
  first = next(iter(int_features.values()), None)
  batch = tf.shape(first if first is not None else next(iter(bytes_features.values())),
                   out_type=tf.int32)[0]
  one = _sizes(batch)
  entries = []

  def entry(name: str, feature: tf.Tensor) -> tf.Tensor:
    key = tf.fill(tf.stack([batch, 1]), name)  # the key string itself, once per row
    return _encode("Features.FeatureEntry", {"key": key, "value": feature[:, tf.newaxis]},
                   _sizes(batch, fields=2))

  for name in sorted({**int_features, **bytes_features}):
    if name in int_features and name in bytes_features:
      raise ValueError(f"feature {name!r} is given both as ints and as bytes")
    if name in int_features:
      values = tf.cast(int_features[name], tf.int64)
      values.shape.assert_has_rank(2)
      width = tf.shape(values, out_type=tf.int32)[1]
      int64_list = _encode("Int64List", {"value": values}, _sizes(batch, width))
      feature = _encode("Feature", {"int64_list": int64_list[:, tf.newaxis]}, one)
    else:
      values = bytes_features[name]
      values.shape.assert_has_rank(1)
      bytes_list = _encode("BytesList", {"value": values[:, tf.newaxis]}, one)
      feature = _encode("Feature", {"bytes_list": bytes_list[:, tf.newaxis]}, one)
    entries.append(entry(name, feature))
  feature_map = _encode("Features", {"feature": tf.stack(entries, axis=1)},
                        _sizes(batch, len(entries)))
  return _encode("Example", {"features": feature_map[:, tf.newaxis]}, one)


def make_record_encoder(tokenizer, max_seq_length: int, pair: bool, multi_label: bool = False):
  """Raw texts, label ids and guids -> serialized training records, one graph call a batch.

  The records hold what run_classifier's file_based_convert_examples_to_features
  writes (input_ids, input_mask, segment_ids, label_ids, is_real_example) plus
  the guid.

  Args:
    tokenizer: a tokenization.BertTokenizer.
    max_seq_length: int. Length of every sequence feature.
    pair: bool. Whether the function takes texts_b as well.
    multi_label: bool. label_ids is a multi-hot int64 [batch, num_labels] (written as
      label_ids' num_labels values) rather than int64 [batch].
  Returns:
    A function (texts_a[, texts_b], label_ids, guids) -> string [batch]; texts
    and guids string [batch], label_ids int64 [batch] (or [batch, num_labels]).
  """
  encode = features.make_encoder(tokenizer, max_seq_length, pair)
  strings = tf.TensorSpec([None], tf.string)
  ints = tf.TensorSpec([None, None] if multi_label else [None], tf.int64)

  def records(texts, label_ids, guids):
    ints_ = dict(encode(*texts))
    ints_[schema.LABEL_IDS] = label_ids if multi_label else label_ids[:, tf.newaxis]
    ints_[schema.IS_REAL_EXAMPLE] = tf.ones(tf.stack([tf.shape(guids)[0], 1]), tf.int64)
    return serialize_examples(ints_, {schema.GUID: guids})

  if pair:
    @tf.function(input_signature=[strings, strings, ints, strings], autograph=False)
    def encode_pair(texts_a, texts_b, label_ids, guids):
      return records((texts_a, texts_b), label_ids, guids)
    return encode_pair

  @tf.function(input_signature=[strings, ints, strings], autograph=False)
  def encode_single(texts_a, label_ids, guids):
    return records((texts_a,), label_ids, guids)
  return encode_single
