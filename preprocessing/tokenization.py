"""BERT's FullTokenizer as TensorFlow graph ops: one tokenizer for Beam and serving.

google-research/bert tokenizes in Python (tokenization.py). bertline needs the
same tokens in two places — the Beam preprocess job and the exported model's
raw-text signature — and a second implementation would eventually disagree. So
the tokenizer is a `tf.Module` built only from core TensorFlow and
tensorflow-text ops: the Beam job calls it eagerly on batches, and the exporter
saves it into the SavedModel, where TF Serving runs it without Python.

Exactness comes from construction: every per-character decision BERT makes
(control, whitespace, punctuation, CJK, lower-casing, NFD, accent stripping)
is tabulated at build time from Python's own `unicodedata` and `str.lower()` —
the functions the reference calls — rather than from RE2's or ICU's tables,
which follow other Unicode versions. The graph then only looks characters up.
Three things are not per-character, and are handled explicitly:

* Greek capital sigma lower-cases to final sigma (ς) depending on its
  neighbours (Python implements Unicode's Final_Sigma context);
* NFD reorders combining marks by canonical combining class, which moves the
  few spacing marks (Mc) with a non-zero class that survive accent stripping;
* words longer than 200 *characters* become [UNK] (tensorflow-text counts
  bytes, and transformers uses 100).

The reference pipeline, for each text:
  decode UTF-8 ignoring invalid bytes -> drop NUL, U+FFFD, Cc/Cf (tab, LF, CR
  are whitespace) -> whitespace (incl. Zs) to ' ' -> spaces around CJK
  ideographs -> split on whitespace (str.split) -> if lower-casing: lower(),
  NFD, drop Mn -> split off punctuation -> greedy longest-match WordPiece.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import sys
import threading
import unicodedata
import zipfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from bertline import schema

# Per-code-point flags of the lookup table.
_DROP = 1         # removed by _clean_text (NUL, U+FFFD, Cc/Cf but tab/LF/CR)
_WS = 2           # BERT whitespace: ' ', tab, LF, CR, Zs -> ' '
_PUNCT = 4        # _is_punctuation: split into its own token
_CJK = 8          # _is_chinese_char: surrounded by spaces
_MN = 16          # category Mn: dropped when lower-casing (accent stripping)
_SPLIT = 32       # str.isspace(): str.split() also splits here (U+2028, U+2029)
_CASED = 64       # cased and not case-ignorable (for the final-sigma rule)
_IGNORABLE = 128  # case-ignorable (skipped by the final-sigma rule)
_KEY_SHIFT = 8    # bits above the flags: 1 + the lower()+NFD table row, 0 for none

_MAX_CODE_POINT = 0x110000
_CAPITAL_SIGMA = 0x3A3
_FINAL_SIGMA = 0x3C2
_SPACE = 32


def _is_chinese_char(cp: int) -> bool:
  """BERT's CJK Unified Ideographs ranges (not all of CJK: kana and Hangul are words)."""
  return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or
          (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F) or
          (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
          (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def _is_punctuation(cp: int, category: str) -> bool:
  # BERT counts all non-alphanumeric printable ASCII ("^", "$", "`") as punctuation.
  if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
    return True
  return category.startswith("P")


# Tabulating 0x110000 code points takes ~0.6 s, a tenth of a small preprocess
# run; the tables are a pure function of this interpreter (its unicodedata and
# str.lower) and of the code below, so they are kept on disk under a key made of
# both. BERTLINE_CACHE_DIR=off (or an unwritable directory) computes them afresh.
_TABLES_FORMAT = 1


def _tables_cache_path() -> Optional[str]:
  root = os.environ.get("BERTLINE_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
      "bertline")
  if root == "off":
    return None
  try:
    source = "".join(inspect.getsource(f) for f in (_tabulate, _is_punctuation, _is_chinese_char))
  except (OSError, TypeError):
    return None  # no source to key on (a zipped install): no cache
  key = hashlib.sha256("\0".join([sys.version, unicodedata.unidata_version, str(_TABLES_FORMAT),
                                   source]).encode("utf-8")).hexdigest()[:20]
  return os.path.join(root, f"unicode-tables-{key}.npz")


@functools.lru_cache(maxsize=1)
def unicode_tables() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Tabulates BERT's per-character semantics from this Python's unicodedata (cached).

  Returns:
    flags, ccc, lower_keys, lower_values, lower_splits: see _tabulate.
  """
  names = ("flags", "ccc", "keys", "values", "splits")
  path = _tables_cache_path()
  if path and os.path.exists(path):
    try:
      with np.load(path) as data:
        return tuple(data[n] for n in names)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
      pass  # a damaged cache is rebuilt below
  tables = _tabulate()
  if path:
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(tmp, "wb") as f:
        np.savez(f, **dict(zip(names, tables)))
      os.replace(tmp, path)  # readers see no file or a whole one
    except OSError:
      # Read-only home, full disk: the tables were computed anyway.
      with contextlib.suppress(OSError):
        os.remove(tmp)
  return tables


def _tabulate() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Tabulates BERT's per-character semantics from this Python's unicodedata.

  Returns:
    flags: uint8 [0x110000], the _* bits above for each code point.
    ccc: uint8 [0x110000], canonical combining class.
    lower_keys: int64 [k], code points whose NFD(lower(c)) is not c itself.
    lower_values: int32 [n], the concatenated NFD(lower(c)) sequences.
    lower_splits: int64 [k + 1], row splits of lower_values.
  """
  flags = np.zeros(_MAX_CODE_POINT, np.uint8)
  ccc = np.zeros(_MAX_CODE_POINT, np.uint8)
  keys: List[int] = []
  values: List[int] = []
  splits = [0]
  sigma = chr(_CAPITAL_SIGMA)
  for cp in range(_MAX_CODE_POINT):
    char = chr(cp)
    category = unicodedata.category(char)
    if category in ("Cn", "Co", "Cs"):
      # Unassigned, private use and surrogates: no case, no decomposition, not
      # punctuation; BERT keeps them as word characters.
      flags[cp] = _CJK if _is_chinese_char(cp) else 0
      continue
    f = 0
    if char in (" ", "\t", "\n", "\r") or category == "Zs":
      f |= _WS
    elif cp == 0 or cp == 0xFFFD or category in ("Cc", "Cf"):
      f |= _DROP
    if _is_punctuation(cp, category):
      f |= _PUNCT
    if _is_chinese_char(cp):
      f |= _CJK
    if category == "Mn":
      f |= _MN
    if char.isspace():
      f |= _SPLIT
    # Probe str.lower() itself for the Final_Sigma properties, so the graph
    # agrees with this Python's notion of cased and case-ignorable.
    final_alone = (char + sigma).lower()[-1] == chr(_FINAL_SIGMA)
    final_after_cased = ("A" + char + sigma).lower()[-1] == chr(_FINAL_SIGMA)
    if final_after_cased and not final_alone:
      f |= _IGNORABLE
    elif final_alone:
      f |= _CASED
    flags[cp] = f
    ccc[cp] = unicodedata.combining(char)
    decomposed = unicodedata.normalize("NFD", char.lower())
    if decomposed != char:
      keys.append(cp)
      values.extend(ord(d) for d in decomposed)
      splits.append(len(values))
  return (flags, ccc, np.asarray(keys, np.int64), np.asarray(values, np.int32),
          np.asarray(splits, np.int64))


def check_vocab_file(vocab_file: str) -> None:
  """A vocab.txt given is a file that exists; a model's directory given instead is named."""
  if tf.io.gfile.isdir(vocab_file):
    inside = [n for n in ("vocab.txt", "vocab_chinese.txt") if tf.io.gfile.exists(
        os.path.join(vocab_file, n))]
    raise ValueError(f"vocab file {vocab_file} is a directory: give the vocab.txt file "
                     + (f"({os.path.join(vocab_file, inside[0])})" if inside else "itself"))
  if not tf.io.gfile.exists(vocab_file):
    raise FileNotFoundError(f"vocab file {vocab_file} not found.")


def load_vocab(vocab_file: str) -> List[str]:
  """Reads a BERT vocab.txt (one token per line, id = line number), as BERT does."""
  check_vocab_file(vocab_file)
  with tf.io.gfile.GFile(vocab_file, "rb") as f:
    lines = f.read().decode("utf-8").split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  vocab = [line.strip() for line in lines]
  seen = {}
  for i, token in enumerate(vocab):
    if token in seen:
      raise ValueError(f"{vocab_file}: line {i + 1} repeats token {token!r} of line "
                       f"{seen[token] + 1}; a BERT vocab needs unique tokens.")
    seen[token] = i
  for token in (schema.UNK_TOKEN, schema.CLS_TOKEN, schema.SEP_TOKEN):
    if token not in seen:
      raise ValueError(f"{vocab_file}: no {token} token; is this a BERT vocab.txt?")
  return vocab


def detokenize(ids: Sequence[int], vocab: List[str]) -> str:
  """WordPiece ids -> readable text: "##" pieces glued to the word before, specials dropped.

  Not the input text (case, accents and spacing around punctuation are the
  tokenizer's), but the words the model saw: for warmup requests built from
  preprocessed data and for an evaluation report's examples.
  """
  words: List[str] = []
  for i in ids:
    token = vocab[i]
    if token in (schema.CLS_TOKEN, schema.SEP_TOKEN, schema.UNK_TOKEN, "[PAD]", "[MASK]"):
      continue
    if token.startswith("##"):
      if words:
        words[-1] += token[2:]
      else:
        words.append(token[2:])
    else:
      words.append(token)
  return " ".join(words)


class BertTokenizer(tf.Module):
  """BERT's FullTokenizer (BasicTokenizer + WordpieceTokenizer) in graph ops.

  Args:
    vocab_file: str. BERT vocab.txt (local or gs://).
    do_lower_case: bool. Lower-case, NFD and strip accents, as uncased models expect.
    max_chars_per_word: int. Longer words become [UNK] (BERT's 200).

  Example:
    >>> tok = BertTokenizer("vocab.txt", do_lower_case=True)
    >>> tok.tokenize(tf.constant(["Hello, world!"]))  # RaggedTensor int64
  """

  def __init__(self, vocab_file: str, do_lower_case: bool, max_chars_per_word: int = 200,
               name: str = "bert_tokenizer"):
    super().__init__(name=name)
    self.vocab = load_vocab(vocab_file)
    self.vocab_size = len(self.vocab)
    self.do_lower_case = bool(do_lower_case)
    self.max_chars_per_word = int(max_chars_per_word)
    index = {t: i for i, t in enumerate(self.vocab)}
    self.cls_id = index[schema.CLS_TOKEN]
    self.sep_id = index[schema.SEP_TOKEN]
    self.unk_id = index[schema.UNK_TOKEN]
    self.pad_id = schema.PAD_ID
    flags, ccc, keys, values, splits = unicode_tables()
    # int32 tables: tf.gather on uint8 is not supported by every kernel/device.
    # Above the flag bits, each code point's flags hold 1 + its index among the
    # characters that lower() + NFD change (0: unchanged). One gather instead of
    # a hash table: no table resource, so the graph also converts to TF Lite.
    dense = np.zeros(_MAX_CODE_POINT, np.int64)
    dense[keys] = np.arange(1, len(keys) + 1)
    self._flags = tf.constant((flags.astype(np.int64) | (dense << _KEY_SHIFT)).astype(np.int32),
                              name="char_flags")
    self._ccc = tf.constant(ccc.astype(np.int32), name="combining_class")
    self._lower_values = tf.constant(values, name="lower_nfd_values")
    self._lower_starts = tf.constant(splits[:-1], name="lower_nfd_starts")
    self._lower_lengths = tf.constant(np.diff(splits), name="lower_nfd_lengths")
    # No pre-tokenization: words arrive already split exactly as BERT splits
    # them; the byte limit is lifted because BERT's limit counts characters.
    self._wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=self.vocab, suffix_indicator="##", max_bytes_per_word=1 << 20,
        token_out_type=tf.int64, unknown_token=schema.UNK_TOKEN,
        no_pretokenization=True, support_detokenization=False)

  def _has(self, flags: tf.Tensor, bit: int) -> tf.Tensor:
    return tf.bitwise.bitwise_and(flags, bit) != 0

  def _final_sigmas(self, cps: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """Marks capital sigmas that Python's lower() turns into final sigma.

    Rule (Unicode Final_Sigma): preceded by a cased letter and not followed by
    one, skipping case-ignorable characters on both sides, within one text.
    Vectorised: the nearest non-ignorable neighbour of every position is found
    through a cumulative count of non-ignorable positions.

    Args:
      cps: int32 [n], code points of all texts concatenated.
      rows: int64 [n], the text each code point belongs to.
    """
    flags = tf.gather(self._flags, cps)
    anchor = ~self._has(flags, _IGNORABLE)
    cased = self._has(flags, _CASED)
    anchors = tf.reshape(tf.where(anchor), [-1])
    num_anchors = tf.size(anchors, out_type=tf.int64)
    before = tf.cumsum(tf.cast(anchor, tf.int64), exclusive=True)
    through = tf.cumsum(tf.cast(anchor, tf.int64))
    prev = tf.gather(anchors, tf.maximum(before - 1, 0))
    prev_cased = (before > 0) & (tf.gather(rows, prev) == rows) & tf.gather(cased, prev)
    nxt = tf.gather(anchors, tf.minimum(through, tf.maximum(num_anchors - 1, 0)))
    next_cased = (through < num_anchors) & (tf.gather(rows, nxt) == rows) & tf.gather(cased, nxt)
    return (cps == _CAPITAL_SIGMA) & prev_cased & ~next_cased

  def _lower_nfd(self, cps: tf.Tensor, flags: tf.Tensor, rows: tf.Tensor
                 ) -> Tuple[tf.Tensor, tf.Tensor]:
    """lower() then NFD (decomposition + canonical reordering) of every character.

    Args:
      cps: int32 [n], code points; flags: their rows of the flags table; rows:
        int64 [n], their texts.
    Returns the new code points and their text rows.
    """
    key = tf.cast(tf.bitwise.right_shift(flags, _KEY_SHIFT), tf.int64) - 1
    safe_key = tf.maximum(key, 0)
    lengths = tf.where(key >= 0, tf.gather(self._lower_lengths, safe_key), tf.ones_like(key))

    def one_to_one():
      # The common case (ASCII capitals, CJK, most scripts): every character maps
      # to one, so nothing moves and the row ids stay.
      return tf.where(key >= 0, tf.gather(self._lower_values, tf.gather(self._lower_starts,
                                                                         safe_key)), cps), rows

    def expanding():
      source = tf.repeat(tf.range(tf.size(cps, out_type=tf.int64)), lengths)
      offset = (tf.range(tf.reduce_sum(lengths))
                - tf.gather(tf.cumsum(lengths, exclusive=True), source))
      source_key = tf.gather(key, source)
      out = tf.where(
          source_key >= 0,
          tf.gather(self._lower_values,
                    tf.gather(self._lower_starts, tf.maximum(source_key, 0)) + offset),
          tf.gather(cps, source))
      return out, tf.gather(rows, source)

    out, out_rows = tf.cond(tf.reduce_all(lengths == 1), one_to_one, expanding)
    # Canonical ordering: within each run of non-starters (combining class > 0)
    # sort stably by class. Starters and text boundaries begin a new run.
    ccc = tf.cast(tf.gather(self._ccc, out), tf.int64)
    text_start = tf.concat([[True], out_rows[1:] != out_rows[:-1]], axis=0)
    run = tf.cumsum(tf.cast((ccc == 0) | text_start, tf.int64))
    # Sorting is needed only where two adjacent marks of one run are out of order,
    # which almost no text has: the check is one pass, the stable argsort it
    # skips is the costliest op here.
    order_key = run * 256 + ccc
    out_of_order = tf.reduce_any(order_key[1:] < order_key[:-1])
    return tf.cond(out_of_order,
                   lambda: tf.gather(out, tf.argsort(order_key, stable=True)),
                   lambda: out), out_rows

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
  def normalize(self, texts: tf.Tensor) -> tf.Tensor:
    """BERT's BasicTokenizer as text: its tokens separated by runs of spaces.

    Args:
      texts: string [batch], UTF-8 (invalid bytes are dropped, as BERT does).
    Returns:
      string [batch].
    """
    cps = tf.strings.unicode_decode(texts, "UTF-8", errors="ignore")
    values, rows = cps.flat_values, cps.value_rowids()
    flags = tf.gather(self._flags, values)  # once; later steps reuse or patch it
    kept = ~self._has(flags, _DROP)
    values, rows, flags = (tf.boolean_mask(t, kept) for t in (values, rows, flags))
    is_ws = self._has(flags, _WS)
    values = tf.where(is_ws, _SPACE, values)
    flags = tf.where(is_ws, self._flags[_SPACE], flags)
    if self.do_lower_case:
      # The Final_Sigma context costs a few passes over every character; only texts
      # with a capital sigma need it.
      def with_final_sigmas():
        final = self._final_sigmas(values, rows)
        return (tf.where(final, _FINAL_SIGMA, values),
                tf.where(final, self._flags[_FINAL_SIGMA], flags))

      values, flags = tf.cond(tf.reduce_any(values == _CAPITAL_SIGMA), with_final_sigmas,
                              lambda: (values, flags))
      values, rows = self._lower_nfd(values, flags, rows)
      flags = tf.gather(self._flags, values)
      dropped = self._has(flags, _MN)
    else:
      dropped = tf.zeros_like(values, tf.bool)
    # Each character becomes [before, itself, after]; -1 means nothing.
    spaced = self._has(flags, _PUNCT | _CJK) & ~dropped
    nothing = tf.fill(tf.shape(values), -1)
    space = tf.fill(tf.shape(values), _SPACE)
    middle = tf.where(dropped, nothing, tf.where(self._has(flags, _SPLIT), space, values))
    side = tf.where(spaced, space, nothing)
    emitted = tf.reshape(tf.stack([side, middle, side], axis=1), [-1])
    emitted_rows = tf.repeat(rows, 3)
    keep = emitted >= 0
    chars = tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(emitted, keep), tf.boolean_mask(emitted_rows, keep),
        nrows=tf.size(texts, out_type=tf.int64))
    return tf.strings.unicode_encode(chars, "UTF-8")

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
  def tokenize_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """BasicTokenizer's tokens: string [batch, (words)]."""
    return tf.strings.split(self.normalize(texts))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
  def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """FullTokenizer ids.

    Args:
      texts: string [batch].
    Returns:
      int64 RaggedTensor [batch, (tokens)]: the ids FullTokenizer.tokenize +
      convert_tokens_to_ids give.
    """
    words = self.tokenize_words(texts)
    flat_words = words.flat_values
    pieces = self._wordpiece.tokenize(flat_words)
    too_long = tf.strings.length(flat_words, unit="UTF8_CHAR") > self.max_chars_per_word
    lengths = pieces.row_lengths()
    kept = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(pieces.flat_values, tf.repeat(~too_long, lengths)),
        tf.where(too_long, tf.zeros_like(lengths), lengths))
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(too_long, tf.int64))], tf.constant(self.unk_id, tf.int64)),
        tf.cast(too_long, tf.int64))
    per_word = tf.concat([kept, unknown], axis=1)  # one of the two is empty per word
    return words.with_flat_values(per_word).merge_dims(1, 2)

  def tokenize_to_strings(self, texts) -> List[List[str]]:
    """Eager helper for debugging: the WordPiece tokens of each text."""
    return [[self.vocab[i] for i in row] for row in self.tokenize(tf.constant(texts)).to_list()]
