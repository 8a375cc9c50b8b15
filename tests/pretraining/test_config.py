"""pretraining/config.py: pretrain-data's settings, checked once and named as the flags name them."""

from __future__ import annotations

import pytest

from bertline import configs, flags
from bertline.pretraining.config import PretrainDataConfig, build_parser

REQUIRED = ["--input", "c.txt", "--vocab-file", "v.txt", "--output-dir", "out"]


def _config(*argv):
  parser = build_parser()
  return flags.config_from_flags(PretrainDataConfig, parser.parse_args([*REQUIRED, *argv]),
                                 parser)


def test_googles_flags_and_defaults_under_bertlines_spelling():
  config = _config("--input", "d.txt", "--do-whole-word-mask", "--no-do-lower-case")
  assert config.input == ["c.txt", "d.txt"]
  assert (config.max_seq_length, config.max_predictions_per_seq, config.masked_lm_prob,
          config.short_seq_prob, config.random_seed) == (128, 20, 0.15, 0.1, 12345)
  assert config.do_whole_word_mask and not config.do_lower_case
  # Dynamic masking draws masks each epoch: one copy of the corpus; static: Google's 10.
  assert (config.masking, config.copies) == ("dynamic", 1)
  assert _config("--masking", "static").copies == 10
  assert _config("--masking", "static", "--dupe-factor", "3").copies == 3


@pytest.mark.parametrize("argv, message", [
    (["--masked-lm-prob", "1.5"], "--masked-lm-prob is a probability"),
    (["--masked-lm-prob", "0"], "--masked-lm-prob 0 masks nothing"),
    (["--short-seq-prob", "-0.1"], "--short-seq-prob is a probability"),
    (["--held-out-fraction", "1"], "--held-out-fraction must be at least 0 and below 1"),
    (["--max-seq-length", "4"], "--max-seq-length 4 is too small"),
    (["--pairs", "both"], "invalid choice: 'both'"),
])
def test_bad_settings_are_refused_naming_the_flag(argv, message, capsys):
  try:
    _config(*argv)
  except configs.ConfigError as e:  # the config's own checks, named as the flag
    said = str(e)
  except SystemExit as e:  # argparse's (choices): usage, exit 2
    assert e.code == 2
    said = capsys.readouterr().err
  else:
    pytest.fail(f"{argv} was accepted")
  assert message in said, said


def test_a_misspelled_flag_is_refused_with_the_closest_name(capsys):
  with pytest.raises(SystemExit) as exit_info:
    build_parser().parse_args([*REQUIRED, "--masked-lm-prb", "0.2"])
  assert exit_info.value.code == 2
  assert "did you mean --masked-lm-prob?" in capsys.readouterr().err
