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
  # Dense from the start: every id lands at its column by one scatter. Ragged
  # slicing and concatenation build the same rows with dozens of shape asserts,
  # which made tracing (seconds of every small preprocess run) and each call slower.
  ids_a = tf.cast(ids_a, tf.int64)
  batch = ids_a.nrows()
  if ids_b is None:
    # Account for [CLS] and [SEP] with "- 2".
    len_a = tf.minimum(ids_a.row_lengths(), max_seq_length - 2)
    len_b = tf.zeros_like(len_a)
    total = len_a + 2
  else:
    # Account for [CLS], [SEP], [SEP] with "- 3".
    ids_b = tf.cast(ids_b, tf.int64)
    len_a, len_b = truncate_pair_lengths(ids_a.row_lengths(), ids_b.row_lengths(),
                                         max_seq_length - 3)
    total = len_a + len_b + 3
  rows = tf.range(batch)
  # [CLS] at column 0, [SEP] after a, and after b for a pair.
  index_parts = [tf.stack([rows, tf.zeros_like(rows)], 1), tf.stack([rows, len_a + 1], 1)]
  value_parts = [tf.fill([batch], tf.constant(cls_id, tf.int64)),
                 tf.fill([batch], tf.constant(sep_id, tf.int64))]
  if ids_b is not None:
    index_parts.append(tf.stack([rows, total - 1], 1))
    value_parts.append(tf.fill([batch], tf.constant(sep_id, tf.int64)))
  for ids, lengths, first_column in ((ids_a, len_a, tf.ones_like(len_a)),
                                     (ids_b, len_b, len_a + 2)):
    if ids is None:
      continue
    row = ids.value_rowids()
    position = tf.range(tf.size(ids.flat_values, out_type=tf.int64)) - tf.gather(
        ids.row_splits, row)
    kept = position < tf.gather(lengths, row)
    row, position = tf.boolean_mask(row, kept), tf.boolean_mask(position, kept)
    index_parts.append(tf.stack([row, position + tf.gather(first_column, row)], 1))
    value_parts.append(tf.boolean_mask(ids.flat_values, kept))
  shape = tf.stack([batch, tf.constant(max_seq_length, tf.int64)])
  input_ids = tf.scatter_nd(tf.concat(index_parts, 0), tf.concat(value_parts, 0), shape)
  columns = tf.range(max_seq_length, dtype=tf.int64)[tf.newaxis, :]
  input_mask = tf.cast(columns < total[:, tf.newaxis], tf.int64)
  if ids_b is None:
    segment_ids = tf.zeros_like(input_mask)
  else:  # 1 from b's first token through its [SEP]
    segment_ids = tf.cast((columns >= (len_a + 2)[:, tf.newaxis]) & (input_mask > 0), tf.int64)
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
