"""preprocessing/config.py: PreprocessConfig is the one declaration of preprocess's settings —
the command's flags, the run config's data section and the kfp parameter all check alike."""

import pytest

from bertline.configs import ConfigError, SettingError
from bertline.pipeline import config as config_lib
from bertline.preprocessing import beam_job
from bertline.preprocessing.config import PreprocessConfig, from_settings

REQUIRED = ["--task", "sst-2", "--data-dir", "d", "--vocab-file", "v.txt", "--output-dir", "o"]


def test_defaults_are_run_classifiers_and_splits_are_read_as_a_list():
  config = PreprocessConfig(task="sst-2", data_dir="d", vocab_file="v", output_dir="o")
  assert (config.max_seq_length, config.do_lower_case, config.compression) == (128, True, "none")
  assert PreprocessConfig(splits=" train, dev ,").split_names() == ["train", "dev"]


@pytest.mark.parametrize("key, value, flag_message, yaml_message", [
    ("max_seq_length", 2, "--max-seq-length 2 is too small: [CLS] and [SEP] need 2 positions",
     "run.yaml.data.max_seq_length 2 is too small"),
    ("chunk_bytes", 0, "--chunk-bytes 0: give a positive size", "run.yaml.data.chunk_bytes 0:"),
    ("num_shards", -1, "--num-shards -1: give 0", "run.yaml.data.num_shards -1:"),
])
def test_one_check_named_by_the_flag_on_the_command_line_and_by_the_key_in_a_run_config(
    key, value, flag_message, yaml_message):
  flag = "--" + key.replace("_", "-")
  with pytest.raises(SettingError) as e:
    beam_job.config_from_args(REQUIRED + [flag, str(value)])
  assert str(e.value).startswith(flag_message), str(e.value)
  with pytest.raises(ConfigError) as e:
    config_lib.from_dict({"data": {"builtin": "tweets", key: value}}, where="run.yaml")
  assert str(e.value).startswith(yaml_message), str(e.value)


def test_a_choice_is_refused_by_argparse_with_the_choices_and_by_the_config_alike(capsys):
  with pytest.raises(SystemExit) as e:
    beam_job.config_from_args(REQUIRED + ["--compression", "zip"])
  assert e.value.code == 2
  assert "--compression: invalid choice: 'zip' (choose from 'gzip', 'none')" in \
      capsys.readouterr().err
  with pytest.raises(ConfigError, match=r"run.yaml.data.compression: 'zip' is not one of "
                                        r"'gzip', 'none'"):
    config_lib.from_dict({"data": {"builtin": "tweets", "compression": "zip"}}, where="run.yaml")


def test_the_kfp_parameter_is_rebuilt_and_checked_by_the_same_class():
  settings = {"max_seq_length": 64.0, "chunk_bytes": 4096.0, "num_shards": 2.0,
              "do_lower_case": False}
  config = from_settings(settings, task="sst-2", data_dir="d", vocab_file="v", output_dir="o")
  assert (config.max_seq_length, config.chunk_bytes, config.num_shards) == (64, 4096, 2)
  assert config.do_lower_case is False and config.output_dir == "o"
  with pytest.raises(ConfigError, match=r"preprocess_settings: unknown key 'max_len'"):
    from_settings({"max_len": 64}, output_dir="o")
  with pytest.raises(ConfigError, match=r"preprocess_settings.max_seq_length 1 is too small"):
    from_settings({"max_seq_length": 1.0}, output_dir="o")
