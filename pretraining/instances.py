"""Pre-training instances from tokenized documents: create_pretraining_data.py's algorithm on ids.

google-research/bert's create_pretraining_data.py turns documents (lists of
sentences, each a list of WordPiece tokens) into training instances:
`[CLS] A [SEP] B [SEP]` packed to a target length, B the actual next sentences
or (half the time) a random document's, then 15% of the tokens masked 80/10/10.
Everything random is drawn from one `random.Random`, in a fixed order. This
module is that algorithm on token *ids*, drawing the same numbers in the same
order, so that with the same documents, settings and seed its instances are
Google's, token for token and position for position (tests compare with the
bert-tensorflow package's own script). Beyond Google's:

- `pairs`: "nsp" is Google's; "sop" is ALBERT's sentence-order prediction (B is
  the actual continuation, swapped before A half the time; label 1 = swapped —
  a chunk of one sentence is cut at a random token, where ALBERT would pair
  it with a random document and call that swapped); "none" packs sentences into
  one segment, `[CLS] A [SEP]`, RoBERTa's DOC-SENTENCES.
- `mask=False` leaves masking to the input pipeline (dynamic masking, drawn
  anew each epoch: pretraining/masking.py); the random stream then differs.
- whole-word masking masks every piece of a word (`##` continuations) together,
  as Google's later `--do_whole_word_mask` does.

    [CLS] the man went to [MASK] store [SEP] he bought a gall ##on [MASK] milk [SEP]
    segment  0   0    0   0   0     0     0    1   1     1  1    1    1     1   1
"""

from __future__ import annotations

import dataclasses
import random
from typing import List, NamedTuple, Sequence

from bertline import schema

PAIRS = ("none", "nsp", "sop")
MASK_TOKEN = "[MASK]"

Sentence = List[int]
Document = List[Sentence]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """What masking needs of a vocab.txt.

  Args:
    tokens: the vocabulary in id order (vocab.txt's lines).
  """
  tokens: Sequence[str]

  def __post_init__(self):
    index = {t: i for i, t in enumerate(self.tokens)}  # a repeated token: its last line's id
    for token in (schema.CLS_TOKEN, schema.SEP_TOKEN, MASK_TOKEN):
      if token not in index:
        raise ValueError(f"the vocab has no {token} token: masked-LM pre-training needs "
                         f"{schema.CLS_TOKEN}, {schema.SEP_TOKEN} and {MASK_TOKEN}")
    object.__setattr__(self, "cls_id", index[schema.CLS_TOKEN])
    object.__setattr__(self, "sep_id", index[schema.SEP_TOKEN])
    object.__setattr__(self, "mask_id", index[MASK_TOKEN])
    # Google draws a random *token* (vocab_words[randint]) and converts it back to an id.
    object.__setattr__(self, "word_ids", tuple(index[t] for t in self.tokens))
    object.__setattr__(self, "continues_word",
                       tuple(t.startswith("##") for t in self.tokens))


@dataclasses.dataclass(frozen=True)
class Settings:
  """create_pretraining_data.py's flags (and bertline's two), checked by PretrainDataConfig."""
  max_seq_length: int = 128
  short_seq_prob: float = 0.1
  masked_lm_prob: float = 0.15
  max_predictions_per_seq: int = 20
  dupe_factor: int = 10
  pairs: str = "nsp"
  whole_word_mask: bool = False
  mask: bool = True  # static masking: the masks are part of the instance


class Instance(NamedTuple):
  """One training sequence, unpadded.

  input_ids: [CLS] A [SEP] (B [SEP]), masked tokens already replaced when static.
  segment_ids: 0 over [CLS] A [SEP], 1 over B [SEP].
  next_sentence_label: NSP: 1 = B is random; SOP: 1 = A and B swapped; none: 0.
  masked_lm_positions / masked_lm_ids: the masked positions (ascending) and the
    original ids there; empty when masking is dynamic.
  """
  input_ids: List[int]
  segment_ids: List[int]
  next_sentence_label: int
  masked_lm_positions: List[int]
  masked_lm_ids: List[int]


def create_instances(documents: List[Document], settings: Settings, vocab: Vocabulary,
                     rng: random.Random) -> List[Instance]:
  """create_training_instances after its reading: shuffle, dupe_factor passes, shuffle.

  Args:
    documents: non-empty documents in input order (shuffled in place, as Google does).
    settings: the instance settings.
    vocab: the vocabulary the ids index.
    rng: the one random stream; Google's script seeds it with --random_seed.
  Returns:
    The instances, in Google's (shuffled) output order.
  """
  rng.shuffle(documents)
  instances: List[Instance] = []
  for _ in range(settings.dupe_factor):
    for index in range(len(documents)):
      instances.extend(instances_from_document(documents, index, settings, vocab, rng))
  rng.shuffle(instances)
  return instances


def instances_from_document(documents: List[Document], index: int, settings: Settings,
                            vocab: Vocabulary, rng: random.Random) -> List[Instance]:
  """create_instances_from_document: one document's sentences, chunked to a target length."""
  document = documents[index]
  pairs = settings.pairs != "none"
  max_num_tokens = settings.max_seq_length - (3 if pairs else 2)  # [CLS], [SEP] (, [SEP])
  # Usually fill the sequence; sometimes (short_seq_prob) aim shorter, so that pre-training
  # also sees the short inputs fine-tuning will give.
  target = max_num_tokens
  if rng.random() < settings.short_seq_prob:
    target = rng.randint(2, max_num_tokens)
  instances = []
  chunk: List[Sentence] = []
  length = 0
  i = 0
  while i < len(document):
    chunk.append(document[i])
    length += len(document[i])
    if i == len(document) - 1 or length >= target:
      if chunk:
        if pairs:
          a, b, label, unused = _pair(documents, index, chunk, target, settings.pairs, rng)
          i -= unused  # a random B leaves the chunk's other sentences for the next instance
          truncate_seq_pair(a, b, max_num_tokens, rng)
          tokens = [vocab.cls_id, *a, vocab.sep_id, *b, vocab.sep_id]
          segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        else:
          a = [t for sentence in chunk for t in sentence]
          b, label = [], 0
          truncate_seq_pair(a, b, max_num_tokens, rng)
          tokens = [vocab.cls_id, *a, vocab.sep_id]
          segments = [0] * len(tokens)
        positions: List[int] = []
        labels: List[int] = []
        if settings.mask:
          tokens, positions, labels = masked_lm_predictions(
              tokens, settings.masked_lm_prob, settings.max_predictions_per_seq, vocab,
              settings.whole_word_mask, rng)
        instances.append(Instance(tokens, segments, label, positions, labels))
      chunk = []
      length = 0
    i += 1
  return instances


def _pair(documents: List[Document], index: int, chunk: List[Sentence], target: int,
          pairs: str, rng: random.Random):
  """Segments A and B of a chunk; returns (a, b, label, sentences of the chunk left unused)."""
  a_end = 1
  if len(chunk) >= 2:
    a_end = rng.randint(1, len(chunk) - 1)
  a = [t for sentence in chunk[:a_end] for t in sentence]
  if pairs == "sop":
    if len(chunk) == 1:  # one sentence: its two halves, cut at a random token
      whole = chunk[0]
      cut = rng.randint(1, len(whole) - 1) if len(whole) >= 2 else 1
      a, b = list(whole[:cut]), list(whole[cut:])
    else:
      b = [t for sentence in chunk[a_end:] for t in sentence]
    if b and rng.random() < 0.5:
      return b, a, 1, 0
    return a, b, 0, 0
  if len(chunk) == 1 or rng.random() < 0.5:  # a random document's sentences as B
    target_b = target - len(a)
    # Rarely more than one draw on a large corpus; never the document itself if avoidable.
    for _ in range(10):
      other = rng.randint(0, len(documents) - 1)
      if other != index:
        break
    random_document = documents[other]
    b: List[int] = []
    for j in range(rng.randint(0, len(random_document) - 1), len(random_document)):
      b.extend(random_document[j])
      if len(b) >= target_b:
        break
    return a, b, 1, len(chunk) - a_end
  return a, [t for sentence in chunk[a_end:] for t in sentence], 0, 0


def masked_lm_predictions(tokens: List[int], masked_lm_prob: float, max_predictions: int,
                          vocab: Vocabulary, whole_word: bool, rng: random.Random):
  """create_masked_lm_predictions: returns (tokens with masks, positions, original ids).

  Candidates are every position but [CLS] and [SEP] (with whole-word masking,
  a word's pieces together), shuffled; each chosen position becomes [MASK]
  80% of the time, stays itself 10% and becomes a random vocab token 10%.
  """
  candidates: List[List[int]] = []
  for i, token in enumerate(tokens):
    if token in (vocab.cls_id, vocab.sep_id):
      continue
    if whole_word and candidates and vocab.continues_word[token]:
      candidates[-1].append(i)
    else:
      candidates.append([i])
  rng.shuffle(candidates)
  output = list(tokens)
  num_to_predict = min(max_predictions, max(1, int(round(len(tokens) * masked_lm_prob))))
  masked: List[int] = []
  covered = set()
  for group in candidates:
    if len(masked) >= num_to_predict:
      break
    if len(masked) + len(group) > num_to_predict:  # a whole word that would not fit
      continue
    if any(i in covered for i in group):
      continue
    for i in group:
      covered.add(i)
      if rng.random() < 0.8:
        output[i] = vocab.mask_id
      elif rng.random() < 0.5:
        output[i] = tokens[i]
      else:
        output[i] = vocab.word_ids[rng.randint(0, len(vocab.word_ids) - 1)]
      masked.append(i)
  masked.sort()
  return output, masked, [tokens[i] for i in masked]


def truncate_seq_pair(a: List[int], b: List[int], max_num_tokens: int,
                      rng: random.Random) -> None:
  """Trims the longer segment, from its front or its back at random, until both fit."""
  while len(a) + len(b) > max_num_tokens:
    longer = a if len(a) > len(b) else b
    if rng.random() < 0.5:
      del longer[0]
    else:
      longer.pop()
