"""A bad run config fails at once, in one line, before any work is done."""

import os

import pytest
import yaml

from bertline import errors
from tests.reliability.conftest import bertline, bertline_here, last_line

CONFIG = {"data": {"builtin": "tweets", "limit": 200, "max_seq_length": 32},
          "model": {"init_checkpoint": "builtin:minilm"},
          "train": {"max_steps": 2},
          "push": {"to": "registry"}}


@pytest.mark.parametrize("override,expected", [
    ("train.epochs=.nan", "train.epochs must be a finite number, got nan"),
    ("evaluate.thresholds.bogus=0.5", "evaluate.thresholds.bogus: unknown metric"),
    ("data.max_seq_length=100000", "Cannot use sequence length 100000 because the model was "
                                   "only trained up to sequence length 512"),
])
def test_late_errors_fail_before_any_work(tmp_path, override, expected):
  path = tmp_path / "run.yaml"
  path.write_text(yaml.safe_dump(CONFIG))
  work = tmp_path / "work"
  result = bertline("run", "--config", str(path), "--set", override, "--work-dir", str(work))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert expected in last_line(result) and "Traceback" not in result.stderr
  assert not os.path.exists(work)  # nothing preprocessed, trained or written


def test_a_paid_tpu_never_trains_on_the_cpu(tmp_path):
  path = tmp_path / "run.yaml"
  path.write_text(yaml.safe_dump(CONFIG))
  out = tmp_path / "p.yaml"
  result = bertline("compile", "--config", str(path), "--set",
                    "pipeline.train.accelerator_type=TPU_V3", "--set",
                    "pipeline.train.accelerator_count=8", "--output", str(out))
  assert result.returncode == 0, result.stderr
  spec = yaml.safe_load(out.read_text())
  settings = spec["root"]["inputDefinitions"]["parameters"]["train_settings"]["defaultValue"]
  assert settings["strategy"] == "tpu" and settings["tpu"] == "local"
  mismatch = bertline("compile", "--config", str(path), "--set", "train.strategy=cpu", "--set",
                      "pipeline.train.accelerator_type=TPU_V3", "--set",
                      "pipeline.train.accelerator_count=8", "--output", str(out))
  assert mismatch.returncode == errors.BAD_INPUT
  assert "train.strategy 'cpu' cannot use pipeline.train.accelerator_type 'TPU_V3'" in \
      last_line(mismatch)


BROKEN_YAML = "data:\n  builtin: tweets\n  limit: [1, 2\ntrain:\n  max_steps: 2\n"


@pytest.mark.parametrize("command", [
    ["run", "--config", "{path}"],                                    # a run config
    ["train", "--config", "{path}", "--data-dir", "d", "--model-dir", "m"],  # a TrainConfig YAML
    ["preprocess", "--task-config", "{path}", "--data-dir", "d", "--vocab-file", "v",
     "--output-dir", "o"],                                            # a task YAML
])
def test_a_yaml_error_is_one_line_naming_the_file_line_and_column(tmp_path, command):
  path = tmp_path / "broken.yaml"
  path.write_text(BROKEN_YAML)
  result = bertline_here(*[part.format(path=path) for part in command])
  assert result.returncode == errors.BAD_INPUT, result.stderr
  line = last_line(result)
  assert f"{path}, line 4, column 6: not valid YAML: expected ',' or ']', but got ':'" in line, \
      result.stderr
  assert "Traceback" not in result.stderr and "^" not in result.stderr


def test_a_negative_clip_norm_is_refused_like_a_negative_learning_rate(tmp_path):
  for flag, rule in (("--clip-norm", "must be 0 or more"), ("--learning-rate", "must be positive")):
    result = bertline_here("train", "--data-dir", tmp_path, "--model-dir", tmp_path / "m", flag,
                           "-1")
    assert result.returncode == errors.BAD_INPUT, result.stderr
    assert f"{flag} {rule}, got -1.0" in last_line(result)
    assert not os.path.exists(tmp_path / "m")


def test_compile_onto_a_directory_names_it_and_leaves_nothing_behind(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  result = bertline_here("compile", "--output", target)
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert last_line(result).endswith(f"--output {target} is a directory: give the file to write, "
                                    f"e.g. {target / 'pipeline.yaml'}")
  assert sorted(os.listdir(tmp_path)) == ["out"] and os.listdir(target) == []
