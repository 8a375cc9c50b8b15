"""pretraining/inputs.py: dynamic masks follow create_masked_lm_predictions' rule, resumably."""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

from bertline import schema
from bertline.pretraining import inputs

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)] + [
    f"##p{i}" for i in range(15)]
CLS, SEP, MASK = 2, 3, 4


def _example(rng, length, seq=32):
  ids = np.zeros(seq, np.int32)
  ids[:length] = rng.integers(5, len(VOCAB), length)
  ids[0], ids[length - 1] = CLS, SEP
  return {schema.INPUT_IDS: tf.constant(ids),
          schema.INPUT_MASK: tf.constant((np.arange(seq) < length).astype(np.int32)),
          schema.SEGMENT_IDS: tf.zeros(seq, tf.int32)}


def test_masks_are_googles_count_never_special_and_80_10_10():
  masker = inputs.Masker(VOCAB, max_predictions=5, masked_lm_prob=0.15, whole_word=False)
  rng = np.random.default_rng(0)
  kinds = collections.Counter()
  for i in range(600):
    length = int(rng.integers(3, 33))
    example = _example(rng, length)
    out = masker(example, tf.constant([1, i], tf.int64))
    weights = out[schema.MASKED_LM_WEIGHTS].numpy()
    n = int(weights.sum())
    assert n == min(5, max(1, round(length * 0.15)))
    positions = out[schema.MASKED_LM_POSITIONS].numpy()[:n]
    original = example[schema.INPUT_IDS].numpy()
    assert list(positions) == sorted(set(positions)) and (positions[n:] == 0).all()
    assert all(0 < p < length - 1 for p in positions)  # never [CLS], [SEP] or padding
    np.testing.assert_array_equal(out[schema.MASKED_LM_IDS].numpy()[:n], original[positions])
    changed = out[schema.INPUT_IDS].numpy()
    assert (np.delete(changed, positions) == np.delete(original, positions)).all()
    for p in positions:
      kinds["mask" if changed[p] == MASK else "kept" if changed[p] == original[p]
            else "random"] += 1
  total = sum(kinds.values())
  assert abs(kinds["mask"] / total - 0.8) < 0.04
  assert abs(kinds["kept"] / total - 0.1) < 0.04 and abs(kinds["random"] / total - 0.1) < 0.04


def test_the_same_seed_draws_the_same_masks_and_another_seed_others():
  masker = inputs.Masker(VOCAB, max_predictions=5, masked_lm_prob=0.15, whole_word=False)
  example = _example(np.random.default_rng(1), 30)
  draw = [masker(example, tf.constant(s, tf.int64))[schema.MASKED_LM_POSITIONS].numpy()
          for s in ([3, 9], [3, 9], [3, 10])]
  assert (draw[0] == draw[1]).all() and not (draw[0] == draw[2]).all()


def test_whole_word_masking_takes_every_piece_of_a_word():
  masker = inputs.Masker(VOCAB, max_predictions=10, masked_lm_prob=0.3, whole_word=True)
  words = [[7, 47, 48], [8], [9, 49], [10], [11, 50, 51, 52], [12], [13, 53]] * 2
  ids = [CLS] + [t for w in words for t in w] + [SEP]
  example = {schema.INPUT_IDS: tf.constant(ids), schema.INPUT_MASK: tf.ones(len(ids), tf.int32),
             schema.SEGMENT_IDS: tf.zeros(len(ids), tf.int32)}
  starts, position = [], 1
  for w in words:
    starts.append(list(range(position, position + len(w))))
    position += len(w)
  for seed in range(100):
    out = masker(example, tf.constant([seed, 0], tf.int64))
    n = int(out[schema.MASKED_LM_WEIGHTS].numpy().sum())
    masked = set(out[schema.MASKED_LM_POSITIONS].numpy()[:n])
    assert 0 < n <= round(len(ids) * 0.3)
    for word in starts:
      assert set(word) <= masked or not set(word) & masked, (word, masked)
