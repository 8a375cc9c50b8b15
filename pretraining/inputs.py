"""tf.data over a `bertline pretrain-data` output: batches for masked-LM training.

Static data carries its masks (Google's records). Dynamic data does not: the
masks are drawn here, per example, as create_masked_lm_predictions draws them
— up to max_predictions_per_seq positions, round(length × masked_lm_prob) of
them, never [CLS], [SEP] or padding, each [MASK] 80%, itself 10%, a random
token 10% — anew each time an example is read (RoBERTa's dynamic masking).
The draws are stateless functions of (seed, the element's index in the
stream), so a resumed run, whose iterator position is in its checkpoint, draws
exactly what the uninterrupted run would have, and evaluation draws the same
masks every time.

Every batch is a dict of int32 tensors (weights float32):

  input_ids, input_mask, segment_ids:                [batch, max_seq_length]
  masked_lm_positions, masked_lm_ids, masked_lm_weights: [batch, max_predictions_per_seq]
  next_sentence_labels:                              [batch] (with pairs)
  mlm_scale:                                         [batch] batch / masks in the batch
  is_real_example:                                   [batch] (evaluation: 0 for padding)

mlm_scale turns per-example sums of masked-token losses into run_pretraining's
mean over the batch's masks once the loop divides by the batch size — over the
global batch, whatever the replicas and micro-batches.
"""

from __future__ import annotations

from typing import Dict, List

import tensorflow as tf

from bertline import schema
from bertline.pretraining.instances import MASK_TOKEN
from bertline.trainer import inputs as trainer_inputs

Batch = Dict[str, tf.Tensor]
MLM_SCALE = "mlm_scale"
_EVAL_SEED = 7919  # evaluation's masks: fixed, so every evaluation scores the same positions


class Masker:
  """Draws an example's masks from its ids: dynamic masking's rule, in graph ops.

  Args:
    vocab: the vocabulary (vocab.txt's lines).
    max_predictions: int. max_predictions_per_seq.
    masked_lm_prob: float.
    whole_word: bool. Mask every WordPiece of a word together.
  """

  def __init__(self, vocab: List[str], max_predictions: int, masked_lm_prob: float,
               whole_word: bool):
    index = {t: i for i, t in enumerate(vocab)}
    self.cls_id, self.sep_id = index[schema.CLS_TOKEN], index[schema.SEP_TOKEN]
    self.mask_id = index[MASK_TOKEN]
    self.vocab_size = len(vocab)
    self.max_predictions = max_predictions
    self.masked_lm_prob = masked_lm_prob
    self.continues_word = tf.constant([t.startswith("##") and whole_word for t in vocab])

  def __call__(self, example: Batch, seed: tf.Tensor) -> Batch:
    """Masks one example ([seq] features); `seed`: int64 [2], stateless."""
    ids = tf.cast(example[schema.INPUT_IDS], tf.int32)
    real = tf.cast(example[schema.INPUT_MASK], tf.bool)
    seq = tf.shape(ids)[0]
    candidate = real & (ids != self.cls_id) & (ids != self.sep_id)
    # Words: a candidate starts one unless it continues the previous candidate's (whole-word).
    continues = tf.gather(self.continues_word, ids) & candidate
    previous_candidate = tf.concat([[False], candidate[:-1]], 0)
    starts = candidate & ~(continues & previous_candidate)
    word = tf.cumsum(tf.cast(starts, tf.int32)) - 1  # each candidate's word index
    num_words = tf.reduce_sum(tf.cast(starts, tf.int32))
    sizes = tf.math.unsorted_segment_sum(tf.cast(candidate, tf.int32),
                                         tf.where(candidate, word, seq), seq + 1)[:seq]
    length = tf.reduce_sum(tf.cast(real, tf.float32))
    num_to_predict = tf.minimum(self.max_predictions, tf.maximum(
        1, tf.cast(tf.round(length * self.masked_lm_prob), tf.int32)))
    seeds = tf.random.experimental.stateless_split(seed, 4)
    # Words in a random order (indices past the last word sort last: they hold no token); take
    # them while their pieces still fit. Google's loop also tries the words after one that
    # does not fit; with single pieces (no whole-word masking) the two are the same.
    score = tf.random.stateless_uniform([seq], seeds[0])
    score = tf.where(tf.range(seq) < num_words, score, 2.0)
    order = tf.argsort(score)
    fits = tf.cumsum(tf.gather(sizes, order)) <= num_to_predict
    chosen_words = tf.scatter_nd(order[:, None], fits, [seq])  # by word index
    chosen = candidate & tf.gather(chosen_words, tf.maximum(word, 0))
    # 80% [MASK], 10% itself, 10% a random token (Google's two draws).
    first = tf.random.stateless_uniform([seq], seeds[1])
    second = tf.random.stateless_uniform([seq], seeds[2])
    random_ids = tf.random.stateless_uniform([seq], seeds[3], maxval=self.vocab_size,
                                             dtype=tf.int32)
    replaced = tf.where(first < 0.8, self.mask_id, tf.where(second < 0.5, ids, random_ids))
    positions = tf.cast(tf.where(chosen)[:, 0], tf.int32)[:self.max_predictions]
    count = tf.shape(positions)[0]
    pad = self.max_predictions - count
    out = dict(example)
    out[schema.INPUT_IDS] = tf.where(chosen, replaced, ids)
    out[schema.MASKED_LM_POSITIONS] = tf.pad(positions, [[0, pad]])
    out[schema.MASKED_LM_IDS] = tf.pad(tf.gather(ids, positions), [[0, pad]])
    out[schema.MASKED_LM_WEIGHTS] = tf.pad(tf.ones([count], tf.float32), [[0, pad]])
    for name in (schema.MASKED_LM_POSITIONS, schema.MASKED_LM_IDS, schema.MASKED_LM_WEIGHTS):
      out[name].set_shape([self.max_predictions])
    return out


def _parse(metadata: schema.PretrainingMetadata):
  spec = schema.pretraining_feature_spec(metadata.max_seq_length,
                                         metadata.max_predictions_per_seq,
                                         static_masks=metadata.masking == "static",
                                         pairs=metadata.pairs != "none")

  def parse(record):
    example = tf.io.parse_single_example(record, spec)
    out = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}
    if schema.NEXT_SENTENCE_LABELS in out:
      out[schema.NEXT_SENTENCE_LABELS] = out[schema.NEXT_SENTENCE_LABELS][0]
    return out
  return parse


def _masked(ds: tf.data.Dataset, metadata: schema.PretrainingMetadata, masker: Masker,
            seed: int) -> tf.data.Dataset:
  """Parsed examples, with masks drawn for dynamic data from (seed, element index)."""
  ds = ds.map(_parse(metadata), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if metadata.masking == "static":
    return ds
  return ds.enumerate().map(
      lambda i, ex: masker(ex, tf.stack([tf.constant(seed, tf.int64), i])),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _with_scale(batch: Batch) -> Batch:
  weights = batch[schema.MASKED_LM_WEIGHTS]
  size = tf.cast(tf.shape(weights)[0], tf.float32)
  scale = size / tf.maximum(tf.reduce_sum(weights), 1.0)
  return {**batch, MLM_SCALE: tf.fill([tf.shape(weights)[0]], scale)}


def train_dataset(data_dir: str, metadata: schema.PretrainingMetadata, masker: Masker,
                  batch_size: int, seed: int, shuffle_buffer: int) -> tf.data.Dataset:
  """Shuffled, repeated, masked training batches; the same stream for the same seed."""
  files = metadata.split_files(data_dir, "train")
  ds = tf.data.Dataset.from_tensor_slices(files)
  if len(files) > 1:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  compression = schema.TF_COMPRESSION_TYPE[metadata.compression]
  ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                     cycle_length=max(1, min(8, len(files))),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
  ds = _masked(ds, metadata, masker, seed)
  ds = ds.batch(batch_size, drop_remainder=True).map(_with_scale)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(data_dir: str, metadata: schema.PretrainingMetadata, masker: Masker,
                 batch_size: int, split: str) -> tf.data.Dataset:
  """Every example of `split` once, in file order, with the same masks every time; the last
  batch padded with is_real_example 0 rows (whose mask weights are 0)."""
  files = metadata.split_files(data_dir, split)
  ds = tf.data.TFRecordDataset(files, compression_type=schema.TF_COMPRESSION_TYPE[
      metadata.compression])
  ds = _masked(ds, metadata, masker, _EVAL_SEED)
  ds = ds.map(lambda ex: {**ex, schema.IS_REAL_EXAMPLE: tf.constant(1, tf.int32)})
  ds = ds.batch(batch_size).map(lambda b: trainer_inputs.pad_batch(b, batch_size)).map(_with_scale)
  return ds.prefetch(tf.data.AUTOTUNE)
