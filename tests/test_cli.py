"""The `bertline` command: help, dispatch and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

from bertline import cli, resources


def _bertline(*args, cwd=None):
  return subprocess.run([sys.executable, "-m", "bertline", *args], capture_output=True, text=True,
                        cwd=cwd, timeout=300)


def test_help_lists_every_stage():
  result = _bertline("--help")
  assert result.returncode == 0
  for name in cli.COMMANDS:
    assert f"  {name} " in result.stdout


def test_stage_help_and_bad_input_is_one_clear_line(tmp_path):
  result = _bertline("preprocess", "--help")
  assert result.returncode == 0 and "--max-seq-length" in result.stdout
  result = _bertline("preprocess", "--task", "mrpc", "--data-dir", str(tmp_path), "--vocab-file",
                     os.path.join(resources.minilm_dir(), "vocab.txt"), "--output-dir",
                     str(tmp_path / "out"))
  assert result.returncode == 3  # bad input; 2 is argparse's usage error
  assert result.stderr.strip().splitlines()[-1].startswith(
      f"bertline preprocess: error: {tmp_path}/train.tsv not found. Task 'mrpc' expects")
  assert "Traceback" not in result.stderr


def test_unknown_command():
  result = _bertline("fly")
  assert result.returncode == 2 and "unknown command 'fly'" in result.stderr


def test_beams_import_notices_about_bigquery_are_kept_for_verbose_runs_only():
  quiet = _bertline("score", "--help")
  assert quiet.returncode == 0 and "usage: bertline score" in quiet.stdout
  assert "apitools" not in quiet.stderr and "bigquery" not in quiet.stderr
  verbose = _bertline("--verbose", "preprocess", "--help")
  assert verbose.returncode == 0 and "apitools not found" in verbose.stderr
