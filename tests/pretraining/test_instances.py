"""pretraining/instances.py: Google's masking and pairing rules, and what bertline adds to them.

Exactness against create_pretraining_data.py itself is tested end to end in
test_data_job.py; here, the properties of each rule on a small vocabulary.
"""

from __future__ import annotations

import collections
import random

import pytest

from bertline.pretraining import instances as lib

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "man", "went", "to", "store",
          "gall", "##on", "of", "milk", "he", "bought", "a", "##s", "play", "##ing"]
VOCAB = lib.Vocabulary(TOKENS)
ID = {t: i for i, t in enumerate(TOKENS)}


def _ids(text):
  return [ID[t] for t in text.split()]


def test_a_vocab_without_mask_is_refused_naming_the_token():
  with pytest.raises(ValueError, match=r"no \[MASK\] token"):
    lib.Vocabulary([t for t in TOKENS if t != "[MASK]"])


def test_masks_are_80_percent_mask_10_kept_10_random_and_never_cls_or_sep():
  rng = random.Random(0)
  tokens = [VOCAB.cls_id] + _ids("the man went to store he bought a gall ##on of milk") * 3 + [
      VOCAB.sep_id]
  kinds = collections.Counter()
  for _ in range(3000):
    out, positions, labels = lib.masked_lm_predictions(tokens, 0.15, 20, VOCAB, False, rng)
    assert positions == sorted(positions) and 0 not in positions
    assert len(tokens) - 1 not in positions
    assert len(positions) == round(len(tokens) * 0.15)
    assert labels == [tokens[p] for p in positions]
    for p in positions:
      kinds["mask" if out[p] == VOCAB.mask_id else "kept" if out[p] == tokens[p] else "random"] += 1
    assert all(out[i] == tokens[i] for i in range(len(tokens)) if i not in positions)
  total = sum(kinds.values())
  # A random draw can land on the same token (1 in 20 here): it counts as kept.
  assert abs(kinds["mask"] / total - 0.8) < 0.02
  assert abs(kinds["kept"] / total - (0.1 + 0.1 / len(TOKENS))) < 0.02
  assert abs(kinds["random"] / total - 0.1 * (1 - 1 / len(TOKENS))) < 0.02


def test_at_most_max_predictions_and_at_least_one():
  tokens = [VOCAB.cls_id] + _ids("the man") * 40 + [VOCAB.sep_id]
  _, positions, _ = lib.masked_lm_predictions(tokens, 0.15, 5, VOCAB, False, random.Random(1))
  assert len(positions) == 5
  short = [VOCAB.cls_id, ID["man"], VOCAB.sep_id]
  _, positions, _ = lib.masked_lm_predictions(short, 0.15, 5, VOCAB, False, random.Random(1))
  assert positions == [1]


def test_whole_word_masking_masks_every_piece_of_a_word_together():
  tokens = [VOCAB.cls_id] + _ids("he bought a gall ##on of milk play ##ing play ##s ##s") * 4 + [
      VOCAB.sep_id]
  words = []  # each position's word: its first piece's position
  for i, t in enumerate(tokens):
    words.append(words[-1] if TOKENS[t].startswith("##") and i > 1 else i)
  for seed in range(200):
    _, positions, _ = lib.masked_lm_predictions(tokens, 0.15, 20, VOCAB, True,
                                                random.Random(seed))
    assert 0 < len(positions) <= round(len(tokens) * 0.15)
    masked = set(positions)
    for p in positions:  # every piece of a masked word is masked
      assert {i for i, w in enumerate(words) if w == words[p]} <= masked


def test_whole_word_masking_is_plain_masking_when_no_token_continues_a_word():
  tokens = [VOCAB.cls_id] + _ids("the man went to store he bought a") * 3 + [VOCAB.sep_id]
  for seed in range(20):
    assert (lib.masked_lm_predictions(tokens, 0.15, 20, VOCAB, True, random.Random(seed))
            == lib.masked_lm_predictions(tokens, 0.15, 20, VOCAB, False, random.Random(seed)))


def _documents():
  # Within a document no token repeats, so where a segment came from is unambiguous.
  sentences = ["the man", "went to store", "he", "bought a gall ##on", "of milk"]
  return [[_ids(s) for s in sentences], [_ids("play ##ing"), _ids("##s the man")],
          [_ids("milk of store")]]


def test_sentence_order_pairs_are_in_order_with_label_0_and_swapped_with_label_1():
  docs = _documents()
  labels = collections.Counter()
  settings = lib.Settings(max_seq_length=16, pairs="sop", mask=False, dupe_factor=1)
  for seed in range(100):
    for made in lib.create_instances([list(d) for d in docs], settings, VOCAB,
                                     random.Random(seed)):
      sep = made.input_ids.index(VOCAB.sep_id)
      a, b = made.input_ids[1:sep], made.input_ids[sep + 1:-1]
      assert made.segment_ids == [0] * (sep + 1) + [1] * (len(b) + 1)
      assert len(made.input_ids) <= 16 and a and b
      labels[made.next_sentence_label] += 1
      # Both halves come from one document: never a random document's sentences.
      doc = next(d for d in docs if _contains(sum(d, []), a) and _contains(sum(d, []), b))
      first, second = (a, b) if made.next_sentence_label == 0 else (b, a)
      assert _position(sum(doc, []), first) < _position(sum(doc, []), second)
  assert 0.4 < labels[1] / sum(labels.values()) < 0.6


def test_without_pairs_a_sequence_is_one_segment_of_one_documents_consecutive_sentences():
  docs = _documents()
  settings = lib.Settings(max_seq_length=10, pairs="none", mask=False, dupe_factor=3)
  made = lib.create_instances([list(d) for d in docs], settings, VOCAB, random.Random(3))
  assert made
  for m in made:
    assert m.input_ids[0] == VOCAB.cls_id and m.input_ids[-1] == VOCAB.sep_id
    assert m.segment_ids == [0] * len(m.input_ids) and len(m.input_ids) <= 10
    assert m.next_sentence_label == 0 and m.masked_lm_positions == []
    body = m.input_ids[1:-1]
    assert any(_contains(sum(d, []), body) for d in docs), body


def _contains(haystack, needle):
  return _position(haystack, needle) >= 0


def _position(haystack, needle):
  for i in range(len(haystack) - len(needle) + 1):
    if haystack[i:i + len(needle)] == needle:
      return i
  return -1
