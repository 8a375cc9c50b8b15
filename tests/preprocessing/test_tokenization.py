"""The graph tokenizer against Google's FullTokenizer: zero differing ids."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from bertline import corpora, resources
from bertline.preprocessing import tokenization
from tests.preprocessing import adversarial, reference


@pytest.fixture(scope="module")
def uncased_vocab() -> str:
  return os.path.join(resources.minilm_dir(), "vocab.txt")


@pytest.fixture(scope="module")
def cjk_vocab(tmp_path_factory, uncased_vocab) -> str:
  """The uncased vocab plus the Chinese characters of the reviews, bare and as ##pieces.

  Google's Chinese and multilingual vocabs hold CJK characters both ways; the
  MiniLM vocab holds only a few, so most Chinese text would be [UNK] with it.
  """
  with open(uncased_vocab, encoding="utf-8") as f:
    vocab = [line.rstrip("\n") for line in f]
  known = set(vocab)
  chars = sorted({ch for _, text in corpora.read_chinese_reviews(limit_per_class=3000)
                  for ch in text if tokenization._is_chinese_char(ord(ch))})
  extra = [c for c in chars if c not in known] + [f"##{c}" for c in chars if f"##{c}" not in known]
  path = tmp_path_factory.mktemp("vocab") / "vocab_cjk.txt"
  path.write_text("\n".join(vocab + extra) + "\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def corpus_lines():
  """>= 50,000 real and adversarial lines, as raw bytes (the tweets hold invalid UTF-8)."""
  lines = [text for _, text in corpora.read_tweets()]
  lines += [text.encode("utf-8") for _, text in corpora.read_chinese_reviews(limit_per_class=4500)]
  lines += adversarial.adversarial_lines(n_random=4000)
  assert len(lines) >= 50_000
  assert any(b"\xd1" in line for line in lines), "expected the tweets' invalid UTF-8 bytes"
  return lines


def _ours(tokenizer, lines, batch=1024):
  ids = []
  for start in range(0, len(lines), batch):
    ids.extend(tokenizer.tokenize(tf.constant(lines[start:start + batch])).to_list())
  return ids


def _assert_same_ids(vocab_file, lower, lines):
  ref = reference.reference_tokenization().FullTokenizer(vocab_file, do_lower_case=lower)
  ours = _ours(tokenization.BertTokenizer(vocab_file, do_lower_case=lower), lines)
  bad = []
  for i, line in enumerate(lines):
    expected = ref.convert_tokens_to_ids(ref.tokenize(line))
    if ours[i] != expected:
      bad.append((line[:60], ref.convert_ids_to_tokens(expected)[:12],
                  ref.convert_ids_to_tokens(ours[i])[:12]))
  assert not bad, f"{len(bad)} of {len(lines)} lines differ (lower={lower}); first: {bad[:3]}"


# Each case runs Google's Python tokenizer over 50,000 lines (~12 s): the two that pair each
# vocabulary with its natural casing run in `make test`, the crossed two in `make test-all`.
@pytest.mark.parametrize("vocab, lower", [
    ("uncased_vocab", True), ("cjk_vocab", False),
    pytest.param("uncased_vocab", False, marks=pytest.mark.slow),
    pytest.param("cjk_vocab", True, marks=pytest.mark.slow),
], ids=["uncased_vocab-uncased", "cjk_vocab-cased", "uncased_vocab-cased", "cjk_vocab-uncased"])
def test_same_ids_as_full_tokenizer(request, vocab, lower, corpus_lines):
  _assert_same_ids(request.getfixturevalue(vocab), lower, corpus_lines)


def test_corpus_exercises_the_hard_cases(cjk_vocab, corpus_lines):
  """Guards the parity test itself: its corpus must reach the rules that matter."""
  tok = tokenization.BertTokenizer(cjk_vocab, do_lower_case=True)
  words = tok.tokenize_words(tf.constant(corpus_lines[-5000:])).flat_values.numpy()
  words = {w.decode("utf-8") for w in words}
  assert "ς" in "".join(words) and "σ" in "".join(words)  # both sigmas produced
  assert any(len(w) > 200 for w in words)                   # the [UNK] length rule
  assert "[" in words and "sep" in words                    # [SEP] split as text
  ids = tok.tokenize(tf.constant(["中文", "\U0001d165\U0001d16d\u0301\U0001d166"])).to_list()
  assert tok.unk_id not in ids[0]


def test_every_shortcut_agrees_line_by_line(uncased_vocab):
  """The tokenizer skips the final-sigma, decomposition and reordering passes for a
  batch that needs none: tokenized one line at a time, each hard line decides
  those shortcuts alone, and must still give Google's ids, as in one batch."""
  lines = [t.encode("utf-8") for t in adversarial.HAND_PICKED] + [
      "plain ascii", "ΣΑΣ", "e\u0301", "a\u0316\u0301", "中文"]
  for lower in (True, False):
    tok = tokenization.BertTokenizer(uncased_vocab, do_lower_case=lower)
    ref = reference.reference_tokenization().FullTokenizer(uncased_vocab, do_lower_case=lower)
    expected = [ref.convert_tokens_to_ids(ref.tokenize(line)) for line in lines]
    assert [tok.tokenize(tf.constant([line])).to_list()[0] for line in lines] == expected
    assert _ours(tok, lines) == expected
    # Ids hide the order of marks inside an [UNK] word; BasicTokenizer's words do not.
    basic = reference.reference_tokenization().BasicTokenizer(do_lower_case=lower)
    words = [[w.decode("utf-8") for w in tok.tokenize_words(tf.constant([line])).to_list()[0]]
             for line in lines]
    assert words == [basic.tokenize(line) for line in lines]


def test_invalid_utf8_dropped_like_python_ignore(uncased_vocab):
  """Graph decoding must drop exactly the bytes Python's errors='ignore' drops."""
  tok = tokenization.BertTokenizer(uncased_vocab, do_lower_case=False)
  samples = [b"caf\xc3", b"\xe2\x82A", b"\xf0\x80\x80A", b"\xed\xa0\x80x", b"\xc0\xafb", b"a\xffb\xfe",
             b"\xf4\x90\x80\x80z", b"ok\xe2\x82\xac"] + adversarial.random_lines(400, seed=7)[1::2]
  got = [[w.decode("utf-8") for w in row] for row in tok.tokenize_words(tf.constant(samples)).to_list()]
  ref = reference.reference_tokenization().BasicTokenizer(do_lower_case=False)
  expected = [ref.tokenize(s) for s in samples]
  assert got == expected


def test_basic_tokens_match_reference_text(uncased_vocab):
  tok = tokenization.BertTokenizer(uncased_vocab, do_lower_case=True)
  assert tok.tokenize_to_strings(["Hello, WORLD! ΣΑΣ naïve [SEP] 中文"]) == [
      ["hello", ",", "world", "!", "σ", "##α", "##ς", "naive", "[", "sep", "]", "中", "文"]]


def test_vocab_errors_name_the_file_and_line(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"vocab.txt: line 6 repeats token 'hello' of line 5"):
    tokenization.load_vocab(str(path))
  path.write_text("[PAD]\nhello\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"no \[UNK\] token"):
    tokenization.load_vocab(str(path))


def test_saved_model_tokenizes_without_bertline(tmp_path, uncased_vocab):
  """Saved inside a SavedModel, the tokenizer loads with TensorFlow and tf-text alone."""
  tok = tokenization.BertTokenizer(uncased_vocab, do_lower_case=True)
  texts = ["Crazy ideas, ALWAYS: ΣΑΣ".encode() + b" \xff caf\xc3\xa9!", "中文 e\u0301".encode()]
  expected = tok.tokenize(tf.constant(texts)).to_list()
  module = tf.Module()
  module.tokenizer = tok
  module.serve = tf.function(
      lambda t: {"ids": tok.tokenize(t).to_tensor(-1)},
      input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
  script = textwrap.dedent(f"""
      import sys, tensorflow as tf, tensorflow_text  # registers the tf-text ops
      m = tf.saved_model.load({str(tmp_path / 'm')!r})
      out = m.signatures["serving_default"](tf.constant({texts!r}))["ids"].numpy().tolist()
      print([[i for i in row if i >= 0] for row in out])
      assert not any(k.startswith("bertline") for k in sys.modules)
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1] == str(expected)


def test_unicode_tables_cache_is_exact_and_survives_damage(tmp_path, monkeypatch):
  """The on-disk tables equal a fresh tabulation; a truncated file is rebuilt, not trusted."""
  monkeypatch.setenv("BERTLINE_CACHE_DIR", str(tmp_path))
  fresh = tokenization._tabulate()
  first = tokenization.unicode_tables.__wrapped__()   # computes and writes the cache
  [path] = tmp_path.glob("unicode-tables-*.npz")
  second = tokenization.unicode_tables.__wrapped__()  # reads it back
  for a, b, c in zip(fresh, first, second):
    assert a.dtype == c.dtype and (a == b).all() and (a == c).all()
  path.write_bytes(path.read_bytes()[:1000])          # a run killed mid-write elsewhere
  third = tokenization.unicode_tables.__wrapped__()
  assert all((a == c).all() for a, c in zip(fresh, third))
  assert path.stat().st_size > 1000                   # rewritten whole
  assert not list(tmp_path.glob("*.tmp-*"))
  monkeypatch.setenv("BERTLINE_CACHE_DIR", "off")
  tokenization.unicode_tables.__wrapped__()
  assert len(list(tmp_path.glob("*"))) == 1


@pytest.mark.parametrize("ids,vocab,text", [
    ([101, 7592, 2088, 102], {101: "[CLS]", 7592: "hello", 2088: "world", 102: "[SEP]"},
     "hello world"),
    ([1, 2, 3], {1: "play", 2: "##ing", 3: "[UNK]"}, "playing"),
    ([4, 5], {4: "##x", 5: "y"}, "x y"),  # a leading piece stands alone
])
def test_wordpiece_ids_decode_to_the_words(ids, vocab, text):
  table = [""] * (max(vocab) + 1)
  for i, token in vocab.items():
    table[i] = token
  assert tokenization.detokenize(ids, table) == text
