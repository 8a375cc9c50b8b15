"""`bertline extract-features` against google-research/bert's extract_features.py and transformers."""

import ast
import collections
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from bertline import cli, corpora, errors, resources
from bertline.trainer import extract_features
from tests.preprocessing.reference import reference_tokenization
from tests.trainer import fixtures


def _reference_extract_features():
  """read_examples and convert_examples_to_features of bert/extract_features.py.

  Only those definitions are executed: importing the module would define absl
  flags that clash with run_classifier's in the same test process.
  """
  import bert
  path = os.path.join(os.path.dirname(bert.__file__), "extract_features.py")
  tree = ast.parse(open(path).read())
  wanted = {"InputExample", "InputFeatures", "read_examples", "convert_examples_to_features",
            "_truncate_seq_pair"}
  tree.body = [n for n in tree.body
               if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in wanted]
  namespace = {"tf": tf.compat.v1, "tokenization": reference_tokenization(), "re": re,
               "collections": collections}
  exec(compile(tree, path, "exec"), namespace)
  return namespace


@pytest.fixture(scope="module")
def input_file(tmp_path_factory):
  tweets = [t for _, t in corpora.read_tweets(limit=12)]
  lines = tweets[:6] + [
      "The movie was great. ||| I did not like it at all.",
      "",
      b"caf\xc3\xa9 \xff bytes".decode("latin-1").encode("latin-1"),  # invalid UTF-8 kept
      " ".join(["word"] * 60),  # truncated to max_seq_length
  ]
  path = tmp_path_factory.mktemp("extract") / "texts.txt"
  path.write_bytes(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines) + b"\n")
  return str(path)


def test_matches_reference_format_tokens_and_transformers_values(input_file, tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  output = str(tmp_path / "out" / "features.jsonl")
  code = cli.main(["extract-features", "--model", resources.minilm_dir(), "--input", input_file,
                   "--output", output, "--layers=-1,0,-3", "--max-seq-length", "32",
                   "--batch-size", "4"])
  assert code == 0
  lines = open(output).read().splitlines()
  ref = _reference_extract_features()
  # The reference reads text mode and dies on bytes that are not UTF-8; its
  # convert_to_unicode would drop them, so it reads the file with them dropped.
  clean = tmp_path / "clean.txt"
  clean.write_bytes(open(input_file, "rb").read().decode("utf-8", "ignore").encode())
  examples = ref["read_examples"](str(clean))
  tokenizer = reference_tokenization().FullTokenizer(
      os.path.join(resources.minilm_dir(), "vocab.txt"), do_lower_case=True)
  features = ref["convert_examples_to_features"](examples, 32, tokenizer)
  assert len(lines) == len(features) == 10
  model = transformers.BertModel.from_pretrained(resources.minilm_dir(),
                                                 attn_implementation="eager").eval()
  with torch.no_grad():
    hidden = model(input_ids=torch.tensor([f.input_ids for f in features]),
                   attention_mask=torch.tensor([f.input_mask for f in features]),
                   token_type_ids=torch.tensor([f.input_type_ids for f in features]),
                   output_hidden_states=True).hidden_states[1:]
  for line, feature in zip(lines, features):
    got = json.loads(line)
    assert list(got) == ["linex_index", "features"] and got["linex_index"] == feature.unique_id
    assert [t["token"] for t in got["features"]] == feature.tokens
    for position, token in enumerate(got["features"]):
      assert list(token) == ["token", "layers"]
      assert [layer["index"] for layer in token["layers"]] == [-1, 0, -3]
      for layer in token["layers"]:
        values = np.array(layer["values"])
        assert values.shape == (384,)
        assert all(round(v, 6) == v for v in layer["values"][:20])
        expected = hidden[layer["index"]][feature.unique_id, position].numpy()
        np.testing.assert_allclose(values, expected, atol=2e-4)
  assert not [f for f in os.listdir(tmp_path / "out") if ".tmp-" in f]


def test_read_examples_pairs_and_lines(tmp_path):
  path = tmp_path / "in.txt"
  path.write_bytes(b"a ||| b ||| c\r\n\n  spaced  \nlast")
  assert extract_features.read_examples(str(path)) == [
      ("a ||| b", "c"), ("", None), ("spaced", None), ("last", None)]


def _error(capsys, argv):
  assert cli.main(["extract-features"] + argv) == errors.BAD_INPUT
  return capsys.readouterr().err


def test_bad_input(tmp_path, capsys, input_file):
  out = str(tmp_path / "o.jsonl")
  base = ["--model", resources.minilm_dir(), "--output", out]
  assert "--input" in _error(capsys, base + ["--input", str(tmp_path / "missing.txt")])
  err = _error(capsys, base + ["--input", input_file, "--layers=-7"])
  assert "--layers [-7] out of range: the model has 6 layers" in err
  assert "comma-separated integers" in _error(capsys, base + ["--input", input_file,
                                                               "--layers=last"])
  err = _error(capsys, base + ["--input", input_file, "--max-seq-length", "600"])
  assert "Cannot use sequence length 600" in err
  err = _error(capsys, base + ["--input", input_file, "--no-do-lower-case"])
  assert "do_lower_case=False" in err
  assert "No recognised checkpoint" in _error(
      capsys, ["--model", str(tmp_path), "--input", input_file, "--output", out])
  # A checkpoint directory without vocab.txt needs --vocab-file.
  no_vocab = tmp_path / "no_vocab"
  fixtures.write_tf1_checkpoint(
      fixtures.tiny_albert_tensors(np.random.default_rng(0), 30, 8, 16, 24, 12),
      str(no_vocab / "albert_model.ckpt"))
  (no_vocab / "albert_config.json").write_text(json.dumps(dict(
      vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=2,
      num_attention_heads=4, intermediate_size=24, max_position_embeddings=12)))
  err = _error(capsys, ["--model", str(no_vocab), "--input", input_file, "--output", out,
                        "--max-seq-length", "12"])
  assert "has no vocab.txt beside it; pass --vocab-file" in err
  assert not os.path.exists(out)
