"""Damaged model files are named in one line: truncated safetensors, checkpoints and shards."""

import os
import shutil

from bertline import errors, resources
from tests.reliability.conftest import bertline, last_line


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
