"""The run config: every error names the key, the bad value and what is valid."""

import os
import subprocess
import sys

import pytest
import yaml

from bertline.configs import ConfigError
from bertline.pipeline import config as config_lib

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLES = os.path.join(ROOT, "examples")

VALID = {
    "data": {"path": "gs://bucket/tsv/{date}", "task": "mrpc", "max_seq_length": 64},
    "train": {"epochs": 2, "learning_rate": 3.0e-5},
    "evaluate": {"thresholds": {"eval_accuracy": 0.8}, "baseline": "last_pushed"},
    "push": {"to": "gs://bucket/models/mrpc"},
}


def _write(tmp_path, data, name="run.yaml"):
  path = tmp_path / name
  path.write_text(yaml.safe_dump(data))
  return str(path)


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".yaml")))
def test_every_example_config_loads(name):
  config = config_lib.load(os.path.join(EXAMPLES, name))
  assert config.push.to and config.pipeline.image


def test_valid_config_round_trips(tmp_path):
  config = config_lib.load(_write(tmp_path, VALID))
  assert config.train["epochs"] == 2.0 and config.train["learning_rate"] == 3.0e-5
  assert config.evaluate.thresholds == {"eval_accuracy": 0.8}
  assert config.pipeline.train.accelerator_type == "NVIDIA_TESLA_T4"
  again = config_lib.from_dict(config.to_dict())
  assert again == config


def test_unknown_key_names_it_and_the_valid_keys(tmp_path):
  data = dict(VALID, train={"epoch": 3})
  path = _write(tmp_path, data)
  with pytest.raises(ConfigError) as e:
    config_lib.load(path)
  message = str(e.value)
  assert path in message and "train" in message and "'epoch'" in message
  assert "epochs" in message and "learning_rate" in message  # the valid keys


def test_unknown_section(tmp_path):
  with pytest.raises(ConfigError, match=r"unknown key 'trainer'.*valid keys are: .*train"):
    config_lib.load(_write(tmp_path, dict(VALID, trainer={})))


@pytest.mark.parametrize("section,key,value,expected", [
    ("train", "batch_size", "big", "expected an integer, got 'big'"),
    ("train", "learning_rate", "fast", "expected a number, got 'fast'"),
    ("data", "do_lower_case", "yes please", "expected true or false"),
    ("evaluate", "thresholds", [0.9], "expected a mapping"),
])
def test_wrong_type_names_the_key_and_value(tmp_path, section, key, value, expected):
  data = {k: dict(v) for k, v in VALID.items()}
  data[section][key] = value
  with pytest.raises(ConfigError) as e:
    config_lib.load(_write(tmp_path, data))
  assert f"{section}.{key}" in str(e.value) and expected in str(e.value)


def test_missing_data_path_says_what_to_set(tmp_path):
  data = dict(VALID, data={"task": "mrpc"})
  with pytest.raises(ConfigError, match=r"data\.path is missing.*data\.builtin.*tweets"):
    config_lib.load(_write(tmp_path, data))


@pytest.mark.parametrize("key,value,choices", [
    ("train.strategy", "fastest", "'mirrored'"),
    ("data.builtin", "imdb", "'tweets'"),
    ("evaluate.baseline", "production", "'last_pushed'"),
    ("pipeline.train.accelerator_type", "K80", "'NVIDIA_TESLA_T4'"),
])
def test_bad_choice_lists_the_valid_ones(key, value, choices):
  with pytest.raises(ConfigError) as e:
    config_lib.from_dict(VALID, overrides=[f"{key}={value}"])
  assert key in str(e.value) and repr(value) in str(e.value) and choices in str(e.value)


def test_accelerator_needs_a_count_and_tpu_needs_the_tpu_strategy():
  with pytest.raises(ConfigError, match=r"pipeline\.train\.accelerator_count is 0"):
    config_lib.from_dict(VALID, overrides=["pipeline.train.accelerator_count=0"])
  with pytest.raises(ConfigError, match=r"train\.strategy 'mirrored' cannot use .*TPU_V3"):
    config_lib.from_dict(VALID, overrides=["pipeline.train.accelerator_type=TPU_V3",
                                           "train.strategy=mirrored"])
  tpu = config_lib.from_dict(VALID, overrides=["pipeline.train.accelerator_type=TPU_V3",
                                               "pipeline.train.accelerator_count=8",
                                               "train.strategy=tpu"])
  assert tpu.pipeline.train.accelerator_count == 8
  # A paid TPU never trains on the host's CPU: `auto` (the default) becomes the TPU strategy.
  auto = config_lib.from_dict(VALID, overrides=["pipeline.train.accelerator_type=TPU_V3",
                                                "pipeline.train.accelerator_count=8"])
  assert auto.train_settings()["strategy"] == "tpu" and auto.train_settings()["tpu"] == "local"
  with pytest.raises(ConfigError, match=r"train\.strategy 'tpu' cannot use .*NVIDIA_L4"):
    config_lib.from_dict(VALID, overrides=["pipeline.train.accelerator_type=NVIDIA_L4",
                                           "pipeline.train.accelerator_count=1",
                                           "train.strategy=tpu"])


def test_vertex_registration_needs_cloud_storage_and_a_valid_model_id():
  with pytest.raises(ConfigError, match=r"push\.vertex_model needs push\.to in Cloud Storage"):
    config_lib.from_dict(VALID, overrides=["push.vertex_model=m", "push.to=registry"])
  with pytest.raises(ConfigError, match=r"push\.vertex_model needs push\.vertex_project and "
                     r"push\.vertex_region"):
    config_lib.from_dict(VALID, overrides=["push.vertex_model=m", "push.to=gs://b/m"])
  with pytest.raises(ConfigError, match=r"push\.vertex_model '-m': a Vertex AI model ID"):
    config_lib.from_dict(VALID, overrides=["push.vertex_model=-m", "push.to=gs://b/m",
                                           "push.vertex_project=p", "push.vertex_region=r"])
  ok = config_lib.from_dict(VALID, overrides=["push.vertex_model=sentiment", "push.to=gs://b/m",
                                              "push.vertex_project=p",
                                              "push.vertex_region=europe-west4"])
  assert ok.push.vertex_model == "sentiment" and ok.push.check_serving is True


def test_overrides_are_typed_and_checked(tmp_path):
  path = _write(tmp_path, VALID)
  config = config_lib.load(path, ["train.max_steps=50", "pipeline.caching=false",
                                  "data.beam_args=[--runner, DirectRunner]"])
  assert config.train["max_steps"] == 50 and config.pipeline.caching is False
  assert "xla" not in config.train_settings()  # unset: the trainer's per-device default
  assert config_lib.load(path, ["train.xla=false"]).train_settings()["xla"] is False
  assert config.data.beam_args == ["--runner", "DirectRunner"]
  with pytest.raises(ConfigError, match=r"unknown key 'max_step'"):
    config_lib.load(path, ["train.max_step=50"])
  with pytest.raises(ConfigError, match=r"train\.max_steps.*expected an integer, got 'many'"):
    config_lib.load(path, ["train.max_steps=many"])
  with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
    config_lib.load(path, ["train.max_steps"])


def test_missing_file_and_bad_yaml(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"config file .*nope.yaml not found"):
    config_lib.load(str(tmp_path / "nope.yaml"))
  bad = tmp_path / "bad.yaml"
  bad.write_text("train: [unclosed\n")
  with pytest.raises(ConfigError, match=r"bad.yaml, line 2, column 1: not valid YAML: expected ',' or '\]'"):
    config_lib.load(str(bad))


@pytest.mark.parametrize("data,expected", [
    (dict(VALID, train={"epoch": 3}), "run.yaml.train: unknown key 'epoch'"),
    (dict(VALID, data={"task": "mrpc", "path": "{tmp}/no/such/dir"}),
     "data.path {tmp}/no/such/dir not found: point data.path at the directory"),
])
def test_cli_reports_a_bad_config_in_one_line(tmp_path, data, expected):
  data = yaml.safe_load(yaml.safe_dump(data).replace("{tmp}", str(tmp_path)))
  path = _write(tmp_path, data)
  result = subprocess.run([sys.executable, "-m", "bertline", "run", "--config", path],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 3  # bad input (2 is a usage error)
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("bertline run: error: ")
  assert expected.replace("{tmp}", str(tmp_path)) in last
  assert "Traceback" not in result.stderr


def test_task_config_beside_the_config_file_is_found(tmp_path, monkeypatch):
  (tmp_path / "tasks").mkdir()
  (tmp_path / "tasks" / "mine.yaml").write_text("name: mine\n")
  data = dict(VALID, data={"path": "gs://b/d", "task_config": "tasks/mine.yaml"})
  path = _write(tmp_path, data)
  monkeypatch.chdir("/")
  assert config_lib.load(path).data.task_config == str(tmp_path / "tasks" / "mine.yaml")


def test_train_section_is_the_trainers_own_config(tmp_path):
  """`bertline run` and `bertline train --config` accept the same keys and values: the run
  config's train section is checked by trainer/config.py's TrainConfig itself."""
  from bertline.trainer import train as train_lib
  path = _write(tmp_path, VALID)
  config = config_lib.load(path, ["train.mixed_precision=auto", "train.warm_start=true"])
  assert config.warm_start is True and "warm_start" not in config.train_settings()
  settings_file = tmp_path / "train.yaml"
  settings_file.write_text(yaml.safe_dump(config.train_settings()))
  assert train_lib.config_from_args(["--config", str(settings_file)]).mixed_precision == "auto"
  with pytest.raises(ConfigError, match=r"train\.batch_size must be at least 1, got 0"):
    config_lib.load(path, ["train.batch_size=0"])
  with pytest.raises(ConfigError, match=r"train\.epochs must be a finite number, got nan"):
    config_lib.load(path, ["train.epochs=.nan"])
  with pytest.raises(ConfigError, match=r"train\.model_dir: the pipeline sets it"):
    config_lib.load(path, ["train.model_dir=/tmp/m"])
  with pytest.raises(ConfigError, match=r"train\.warm_start: expected true or false"):
    config_lib.load(path, ["train.warm_start=sometimes"])


def test_late_errors_are_caught_before_any_work(tmp_path):
  """Each of these used to fail only after preprocess (and train) had run."""
  path = _write(tmp_path, VALID)
  with pytest.raises(ConfigError, match=r"evaluate\.thresholds\.bogus: unknown metric; choose one "
                     r"of eval_accuracy"):
    config_lib.load(path, ["evaluate.thresholds.bogus=0.5"])
  # The model's own check (model_config.check_sequence_length), naming this file's key.
  with pytest.raises(ConfigError, match=r"Cannot use sequence length 100000 because the model was "
                     r"only trained up to sequence length 512 \(max_position_embeddings in "
                     r".*config\.json\); set data\.max_seq_length to at most 512"):
    config_lib.load(path, ["data.max_seq_length=100000", "model.init_checkpoint=builtin:minilm"])
  with pytest.raises(ConfigError, match=r"train\.epochs must be a finite number, got nan"):
    config_lib.load(path, ["train.epochs=.nan"])


def test_distill_and_quantize_sections():
  config = config_lib.from_dict(VALID, overrides=[
      "train.learning_rate=0.0001", "distill={student_layers: 3, temperature: 4.0, max_steps: 9}",
      "export.quantize=int8"])
  settings = config.distill_settings()
  # The train section's settings, then the student's own.
  assert settings["student_layers"] == 3 and settings["temperature"] == 4.0
  assert settings["max_steps"] == 9 and settings["learning_rate"] == 0.0001
  assert config.export.quantize == "int8" and config_lib.from_dict(VALID).distill_settings() == {}
  with pytest.raises(ConfigError, match=r"distill\.student_layers is missing"):
    config_lib.from_dict(VALID, overrides=["distill={temperature: 2.0}"])
  with pytest.raises(ConfigError, match=r"\.distill: unknown key 'layers'"):
    config_lib.from_dict(VALID, overrides=["distill={student_layers: 3, layers: 2}"])
  with pytest.raises(ConfigError, match=r"\.distill\.teacher: the pipeline sets it"):
    config_lib.from_dict(VALID, overrides=["distill={student_layers: 3, teacher: /m}"])
  with pytest.raises(ConfigError, match=r"\.train\.teacher: the pipeline sets it"):
    config_lib.from_dict(VALID, overrides=["train.teacher=/m"])
  with pytest.raises(ConfigError, match=r"distill\.temperature"):
    config_lib.from_dict(VALID, overrides=["distill={student_layers: 3, temperature: -1.0}"])
  with pytest.raises(ConfigError,
                     match=r"export\.quantize: 'int4' is not one of 'none', 'float16', 'int8'"):
    config_lib.from_dict(VALID, overrides=["export.quantize=int4"])
  with pytest.raises(ConfigError, match=r"export\.quantize 'int8' with push\.vertex_model"):
    config_lib.from_dict(VALID, overrides=["export.quantize=int8", "push.vertex_model=m",
                                           "push.to=gs://b/m", "push.vertex_project=p",
                                           "push.vertex_region=r"])


def test_a_pretrain_section_is_pretrain_datas_and_pretrains_own_settings():
  config = config_lib.from_dict(VALID, overrides=[
      "pretrain={input: [gs://b/text/*.txt], labeled_texts: true, masking: static, "
      "train: {max_steps: 100, learning_rate: 0.0001}}"])
  assert config.pretrain.enabled and not config_lib.from_dict(VALID).pretrain.enabled
  # Only what differs from pretrain-data's defaults travels; the input goes to resolve-data.
  assert config.pretrain.data_settings() == {"masking": "static"}
  assert config.pretrain.train_settings() == {"learning_rate": 0.0001, "max_steps": 100}
  assert config_lib.from_dict(config.to_dict()).pretrain == config.pretrain  # round trip
  bad = {
      "pretrain={labeled_texts: true, do_lower_case: false}":
          r"pretrain\.do_lower_case: the pipeline sets it .*it is data\.do_lower_case",
      "pretrain={labeled_texts: true, vocab_file: v.txt}": r"pretrain\.vocab_file: the pipeline",
      "pretrain={labeled_texts: true, masking: random}":
          r"pretrain\.masking: 'random' is not one of 'dynamic', 'static'",
      "pretrain={labeled_texts: true, train: {classifier_dropout: 0.1}}":
          r"pretrain\.train\.classifier_dropout: `bertline pretrain` has no use for it",
      "pretrain={labeled_texts: true, train: {warm_start: true}}":
          r"pretrain\.train\.warm_start: a train key only",
      "pretrain={labeled_texts: true, train: {init_checkpoint: x}}":
          r"pretrain\.train\.init_checkpoint: the pipeline sets it",
      "pretrain={labeled_texts: true, train: {batch_size: 0}}": r"pretrain\.train\.batch_size",
      "pretrain={train: {max_steps: 10}}": r"pretrain: train settings but no text to pre-train",
      "pretrain={input: ['']}": r"pretrain\.input\[0\] is empty",
  }
  for override, message in bad.items():
    with pytest.raises(ConfigError, match=message):
      config_lib.from_dict(VALID, overrides=[override])
