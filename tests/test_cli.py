"""The `bertline` command: help, dispatch and one-line errors."""

from __future__ import annotations

import json
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


# Every command, a flag it has, misspelled: refused by name before any work.
MISSPELLED = {"preprocess": "--max-seq-lenght", "train": "--learning-rat", "distill":
              "--student-layer", "evaluate": "--modle-dir", "predict": "--data-dri",
              "export": "--export-dri", "push": "--too", "score": "--chunk-byte",
              "extract-features": "--layer", "run": "--conifg", "compile": "--outptu",
              "submit": "--conifg", "schedule": "--conifg",
              "run-classifier": "--do_trian", "pretrain-data": "--masked-lm-prb",
              "pretrain": "--learning-rat"}


def test_every_command_refuses_a_misspelled_flag_with_the_closest_name():
  assert sorted(MISSPELLED) == sorted(cli.COMMANDS)
  script = ("import contextlib, io, json, sys\nfrom bertline import cli\nout = {}\n"
            f"for command, flag in {MISSPELLED!r}.items():\n"
            "  err = io.StringIO()\n"
            "  with contextlib.redirect_stderr(err):\n"
            "    try:\n"
            "      code = cli.main([command, flag, '1'])\n"
            "    except SystemExit as e:\n"
            "      code = e.code\n"
            "  out[command] = [code, err.getvalue().strip().splitlines()[-1:]]\n"
            "print(json.dumps(out))\n")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
  outcome = json.loads(result.stdout.strip().splitlines()[-1])
  for command, (code, last) in outcome.items():
    assert code == 2, (command, code, last)
    assert f"unknown flag {MISSPELLED[command]}; did you mean" in last[0], (command, last)


def test_help_and_the_run_config_load_no_tensorflow():
  """`--help` answers at once, and a pipeline is configured and compiled without TensorFlow."""
  script = ("import contextlib, io, sys\nfrom bertline import cli\nimport bertline.pipeline.config\n"
            "loaded = []\n"
            "for argv in [['--help']] + [[c, '--help'] for c in cli.COMMANDS]:\n"
            "  with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "      cli.main(argv)\n"
            "    except SystemExit:\n"
            "      pass\n"
            "  if 'tensorflow' in sys.modules:\n"
            "    loaded.append(argv)\n"
            "    break\n"
            "print('loaded by', loaded)\n")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
  assert result.stdout.strip().splitlines()[-1] == "loaded by []", result.stdout + result.stderr


def _help(command: str) -> str:
  """`bertline COMMAND --help`'s text, in this process (no command's --help loads TensorFlow)."""
  import contextlib
  import io
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    try:
      cli.main([command, "--help"])
    except SystemExit as e:
      assert e.code == 0
  return " ".join(out.getvalue().split())  # argparse wraps lines: compare flowing text


def _flag_help(command: str, flag: str) -> str:
  """The help text of one flag: from its name to the next flag's entry."""
  text = _help(command)
  start = text.index(f" {flag} ")
  nxt = text.find(" --", start + len(flag) + 2)
  while nxt != -1 and text[nxt - 1] not in ")]. ":
    nxt = text.find(" --", nxt + 3)
  return text[start:nxt if nxt != -1 else None]


def test_help_marks_required_flags_and_shows_defaults_and_choices():
  for command, flag in [("train", "--data-dir"), ("train", "--model-dir"),
                        ("distill", "--teacher"), ("distill", "--student-layers"),
                        ("preprocess", "--task"), ("preprocess", "--vocab-file"),
                        ("evaluate", "--model-dir"), ("export", "--export-dir"),
                        ("push", "--to"), ("score", "--model"), ("run", "--config")]:
    assert "[required" in _flag_help(command, flag), (command, flag, _flag_help(command, flag))
  for command, flag, default in [("train", "--grad-accum-steps", "(default: 1)"),
                                 ("train", "--early-stopping-patience", "(default: 0)"),
                                 ("train", "--mixed-precision", "(default: none)"),
                                 ("train", "--hidden-dropout", "default: keep"),
                                 ("distill", "--temperature", "(default: 2.0)"),
                                 ("preprocess", "--max-seq-length", "(default: 128)"),
                                 ("push", "--serving-timeout", "(default: 600.0)")]:
    assert default in _flag_help(command, flag), (command, flag, _flag_help(command, flag))
  train = _help("train")
  assert "--strategy {auto,cpu,gpu,mirrored,tpu,multi-worker}" in train
  assert "--early-stopping-metric {eval_loss,eval_accuracy}" in train
  # Run-only flags only where they apply: distillation's in distill, a fixed date not in schedule.
  assert "--teacher" not in train and "--teacher" in _help("distill")
  assert "--run-date" not in _help("schedule") and "--run-date" in _help("submit")


def test_a_command_alone_prints_its_usage_and_an_example():
  for command in cli.COMMANDS:
    if command in cli.RUN_WITHOUT_FLAGS:
      continue
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
      code = cli.main([command])
    lines = err.getvalue().splitlines()
    assert code == 2, command
    assert lines[0].startswith(f"usage: bertline {command} "), (command, lines[:2])
    example = next(line for line in lines if line.startswith("example: "))
    assert example.startswith(f"example: bertline {command} --"), example
    assert "Traceback" not in err.getvalue()
