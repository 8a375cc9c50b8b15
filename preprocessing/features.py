"""run_classifier.convert_single_example as graph ops, for Beam and serving alike.

Packs token ids into BERT's input layout, e.g. for a pair:

  tokens:      [CLS] is this jack ##son ##ville ? [SEP] no it is not . [SEP]
  segment_ids: 0     0  0    0    0     0       0 0     1  1  1  1   1 1
  input_mask:  1 for every real token, 0 for the zero padding after them.
"""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf

from bertline import schema


def truncate_pair_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: int):
  """Lengths _truncate_seq_pair leaves: it pops from the longer side, b on ties.

  The loop's result in closed form: untouched when both fit; otherwise the
  longer side is cut down towards the shorter one, and when both are long they
  end at ceil(budget / 2) for a and floor(budget / 2) for b.

  Args:
    len_a: int64 [batch]. Token counts of text_a.
    len_b: int64 [batch]. Token counts of text_b.
    budget: int. Tokens available to both (max_seq_length - 3).
  Returns:
    (new_len_a, new_len_b), int64 [batch] each.
  """
  half_up = (budget + 1) // 2
  over = len_a + len_b > budget
  cut_a = tf.minimum(len_a, tf.maximum(budget - len_b, half_up))
  new_a = tf.where(over, cut_a, len_a)
  new_b = tf.where(over, budget - cut_a, len_b)
  return new_a, new_b


def pack_features(ids_a: tf.RaggedTensor, ids_b: Optional[tf.RaggedTensor],
                  max_seq_length: int, cls_id: int, sep_id: int) -> Dict[str, tf.Tensor]:
  """[CLS] a [SEP] (b [SEP]) with segment ids, input mask and zero padding.

  Args:
    ids_a: int64 RaggedTensor [batch, (tokens)]. Ids of text_a.
    ids_b: int64 RaggedTensor [batch, (tokens)] or None. Ids of text_b.
    max_seq_length: int. Length of every output row.
    cls_id: int. Id of [CLS].
    sep_id: int. Id of [SEP].
  Returns:
    {input_ids, input_mask, segment_ids}: int64 [batch, max_seq_length].
  """
  # Dense from the start, by whole-batch selects: each text is cut to the width it
  # can use (RaggedTensorToTensor truncates), then every output column picks from
  # [CLS], text a, [SEP], text b or padding by its position. No ragged slicing
  # (dozens of shape asserts to trace) and no scatter of the ids one by one.
  ids_a = tf.cast(ids_a, tf.int64)
  if ids_b is None:
    # Account for [CLS] and [SEP] with "- 2".
    len_a = tf.minimum(ids_a.row_lengths(), max_seq_length - 2)
    len_b = tf.zeros_like(len_a)
    total = len_a + 2
  else:
    # Account for [CLS], [SEP], [SEP] with "- 3".
    ids_b = tf.cast(ids_b, tf.int64)
    raw_a, raw_b = ids_a.row_lengths(), ids_b.row_lengths()
    pair_a, pair_b = truncate_pair_lengths(raw_a, raw_b, max_seq_length - 3)
    # A text_b without tokens ("" or only spaces) makes a single-text row, as in
    # convert_single_example (`if tokens_b:`): no second [SEP], a cut at max - 2.
    has_b = raw_b > 0
    len_a = tf.where(has_b, pair_a, tf.minimum(raw_a, max_seq_length - 2))
    len_b = tf.where(has_b, pair_b, tf.zeros_like(pair_b))
    total = len_a + len_b + tf.where(has_b, tf.constant(3, tf.int64), 2)
  columns = tf.range(max_seq_length, dtype=tf.int64)[tf.newaxis, :]
  len_a_, total_ = len_a[:, tf.newaxis], total[:, tf.newaxis]
  # Column j holds a's token j - 1 for 1 <= j <= len_a: a, shifted right by one.
  dense_a = ids_a.to_tensor(0, shape=[None, max_seq_length - 1])
  input_ids = tf.pad(dense_a, [[0, 0], [1, 0]])
  input_ids = tf.where((columns >= 1) & (columns <= len_a_), input_ids, 0)
  if ids_b is not None:
    # Column j holds b's token j - (len_a + 2) from len_a + 2 up to the last [SEP].
    dense_b = ids_b.to_tensor(0, shape=[None, max_seq_length])
    in_b = (columns >= len_a_ + 2) & (columns < total_ - 1)
    from_b = tf.gather(dense_b, tf.clip_by_value(columns - len_a_ - 2, 0, max_seq_length - 1),
                       batch_dims=1)
    input_ids = tf.where(in_b, from_b, input_ids)
  sep = (columns == len_a_ + 1) | (columns == total_ - 1)
  input_ids = tf.where(sep, tf.constant(sep_id, tf.int64), input_ids)
  input_ids = tf.where(columns == 0, tf.constant(cls_id, tf.int64), input_ids)
  input_mask = tf.cast(columns < total_, tf.int64)
  if ids_b is None:
    segment_ids = tf.zeros_like(input_mask)
  else:  # 1 from b's first token through its [SEP]
    segment_ids = tf.cast((columns >= len_a_ + 2) & (input_mask > 0), tf.int64)
  if schema.PAD_ID:
    input_ids = tf.where(input_mask > 0, input_ids, tf.constant(schema.PAD_ID, tf.int64))
  return {
      schema.INPUT_IDS: input_ids,
      schema.INPUT_MASK: input_mask,
      schema.SEGMENT_IDS: segment_ids,
  }


def make_encoder(tokenizer, max_seq_length: int, pair: bool):
  """tokenize + pack_features as one tf.function over a batch of raw texts.

  One graph call per batch instead of dozens of eager ragged ops: eager
  dispatch costs more than the packing itself at the batch sizes Beam uses.

  Args:
    tokenizer: a tokenization.BertTokenizer.
    max_seq_length: int. Length of every output row.
    pair: bool. Whether the function takes text_b as well.
  Returns:
    A function (texts_a[, texts_b]) -> {input_ids, input_mask, segment_ids},
    string [batch] in, int64 [batch, max_seq_length] out.
  """
  spec = tf.TensorSpec([None], tf.string)
  if pair:
    @tf.function(input_signature=[spec, spec], autograph=False)
    def encode_pair(texts_a, texts_b):
      return pack_features(tokenizer.tokenize(texts_a), tokenizer.tokenize(texts_b),
                           max_seq_length, tokenizer.cls_id, tokenizer.sep_id)
    return encode_pair

  @tf.function(input_signature=[spec], autograph=False)
  def encode(texts_a):
    return pack_features(tokenizer.tokenize(texts_a), None, max_seq_length,
                         tokenizer.cls_id, tokenizer.sep_id)
  return encode
