"""bertline/flags.py: flags generated from a stage's config, and strict about what they take."""

from __future__ import annotations

import argparse

import pytest

from bertline import flags
from bertline.configs import ConfigError
from bertline.preprocessing.config import PreprocessConfig
from bertline.trainer import config as train_config

REQUIRED = ["--data-dir", "d", "--vocab-file", "v.txt", "--output-dir", "o"]


def _parse(*argv):
  parser = flags.ArgumentParser(prog="bertline preprocess")
  flags.add_config_flags(parser, PreprocessConfig)
  return flags.config_from_flags(PreprocessConfig, parser.parse_args(list(argv)), parser)


def test_every_setting_has_its_flag_and_unset_flags_keep_the_configs_defaults():
  config = _parse(*REQUIRED, "--max-seq-length", "64", "--no-do-lower-case", "--compression",
                  "gzip", "--chunk-bytes", "4096")
  assert (config.max_seq_length, config.do_lower_case, config.compression,
          config.chunk_bytes) == (64, False, "gzip", 4096)
  defaults = PreprocessConfig()
  assert (config.num_shards, config.batch_size, config.splits) == (
      defaults.num_shards, defaults.batch_size, defaults.splits)
  # Only the settings declared for the command line get a flag: beam_args is the rest of it.
  assert "--beam-args" not in flags.flag_names(PreprocessConfig)
  assert {"--chunk-bytes", "--max-seq-length", "--overwrite"} <= set(
      flags.flag_names(PreprocessConfig))


@pytest.mark.parametrize("argv,expected", [
    (["--max-seq-lenght", "64"], "unknown flag --max-seq-lenght; did you mean --max-seq-length?"),
    (["--max-seq", "64"], "unknown flag --max-seq; did you mean --max-seq-length?"),  # no prefixes
    (["--chunk_bytes=5"], "unknown flag --chunk_bytes; did you mean --chunk-bytes?"),
    (["--frobnicate"], "unknown flag --frobnicate ("),
])
def test_an_unknown_flag_is_one_line_with_the_closest_name_and_exit_2(capsys, argv, expected):
  with pytest.raises(SystemExit) as exit_:
    _parse(*REQUIRED, *argv)
  assert exit_.value.code == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_a_misspelled_required_flag_is_named_as_misspelled_not_as_missing(capsys):
  with pytest.raises(SystemExit):
    train_config.from_command_line(["--data-dri", "d"])
  assert "unknown flag --data-dri; did you mean --data-dir?" in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_:
    _parse("--data-dir", "d", "--vocab-file", "v")
  assert exit_.value.code == 2
  assert "required: --output-dir" in capsys.readouterr().err


def test_a_bad_value_is_checked_by_the_config_and_named_by_its_flag(tmp_path):
  with pytest.raises(ConfigError, match=r"^--num-shards -1: give 0"):
    _parse(*REQUIRED, "--num-shards", "-1")
  with pytest.raises(ConfigError, match=r"^--compression: 'zip' is not one of"):
    # argparse knows the choices too; laid over a config, the config checks them itself ...
    flags.config_from_flags(PreprocessConfig, argparse.Namespace(
        compression="zip", data_dir="d", vocab_file="v", output_dir="o"), parser=None)
  with pytest.raises(ConfigError, match=r"^--batch-size must be at least 1, got 0\."):
    train_config.from_command_line(["--batch-size", "0"])
  # ... and a YAML file's value is named by its file and key.
  path = tmp_path / "train.yaml"
  path.write_text("batch_size: 0\n")
  with pytest.raises(ConfigError, match=rf"^{path}\.batch_size must be at least 1, got 0\."):
    train_config.from_command_line(["--config", str(path)])
  assert train_config.from_command_line(["--config", str(path), "--batch-size", "8"]).batch_size == 8


def test_the_help_shows_each_settings_default_and_what_it_means():
  parser = train_config.build_parser()
  text = " ".join(parser.format_help().split())
  assert "--learning-rate X peak learning rate (default: 5e-05)" in text
  assert "--trim-batches, --no-trim-batches cut each batch" in text and "(default: on)" in text
  assert "--strategy {auto,cpu,gpu,mirrored,tpu,multi-worker}" in text
  assert train_config.from_command_line(["--mixed-precision"]).mixed_precision == "auto"
  assert train_config.from_command_line(["--bucket-boundaries", "32,64"]).bucket_boundaries == [
      32, 64]



def test_one_concept_one_flag_and_the_old_spellings_still_work():
  """--project in every command (train's was --gcp-project), --xla (extract-features' was
  --jit-compile): the old names stay accepted, and --help names them."""
  base = ["--data-dir", "d", "--model-dir", "m"]
  assert train_config.from_command_line(base + ["--project", "p"]).gcp_project == "p"
  assert train_config.from_command_line(base + ["--gcp-project", "p"]).gcp_project == "p"
  parser = train_config.extract_features_parser()
  given = ["--model", "m", "--input", "i", "--output", "o"]
  for flag, value in (("--xla", True), ("--jit-compile", True), ("--no-xla", False)):
    config = flags.config_from_flags(train_config.ExtractFeaturesConfig,
                                     parser.parse_args(given + [flag]), parser)
    assert config.xla is value, flag
  assert "(also --jit-compile)" in " ".join(parser.format_help().split())
