"""Damaged model files are named in one line: truncated safetensors, checkpoints and shards."""

import os
import shutil

from bertline import errors, resources
from tests.reliability.conftest import bertline, bertline_here, last_line


def test_a_truncated_safetensors_file_is_named(tmp_path):
  model = tmp_path / "minilm"
  shutil.copytree(resources.minilm_dir(), model)
  weights = model / "model.safetensors"
  with open(weights, "r+b") as f:  # cut it in half, as an interrupted copy does
    f.truncate(os.path.getsize(weights) // 2)
  (tmp_path / "in.txt").write_text("hello world\n")
  result = bertline("extract-features", "--model", str(model), "--input", str(tmp_path / "in.txt"),
                    "--output", str(tmp_path / "out.jsonl"))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  line = last_line(result)
  assert str(weights) in line and "truncated or corrupted" in line
  assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "out.jsonl")


def test_a_reordered_vocab_of_the_right_size_is_refused(tmp_path):
  import pytest

  from bertline.model import checkpoints
  with open(os.path.join(resources.minilm_dir(), "vocab.txt"), "rb") as f:
    tokens = f.read().splitlines(keepends=True)
  tokens[2000], tokens[2001] = tokens[2001], tokens[2000]  # same size, two ids swapped
  shuffled = tmp_path / "vocab.txt"
  shuffled.write_bytes(b"".join(tokens))
  files = checkpoints.resolve_pretrained(resources.minilm_dir())
  with pytest.raises(ValueError, match=r"is not the vocabulary released with .*same 30522 "
                     r"entries, other content or order"):
    files.validate_for(vocab_file=str(shuffled))
  files.validate_for(vocab_file=files.vocab_file)  # its own is fine


def test_a_labels_file_that_does_not_fit_the_head_is_named_before_any_model_is_built(
    tiny_model, tweets_data, tmp_path):
  model = tmp_path / "model"
  shutil.copytree(tiny_model["model_dir"], model)
  labels = model / "labels.txt"
  for count in (1_000_000, 2):  # a wrong file of a million lines would build a 6.7 GB head
    labels.write_text("".join(f"label{i}\n" for i in range(count)))
    result = bertline_here("predict", "--model", model, "--data-dir", tweets_data["data"],
                           "--output", tmp_path / "out.tsv")
    assert result.returncode == errors.BAD_INPUT, result.stderr[-2000:]
    assert f"{labels} has {count} labels but the checkpoint " in last_line(result)
    assert "was trained with 3: restore the labels.txt train wrote" in last_line(result)
  assert not (tmp_path / "out.tsv").exists()
