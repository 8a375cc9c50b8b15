"""evaluator/config.py: evaluate's, predict's and score's settings, declared once for every surface."""

from __future__ import annotations

import pytest

from bertline import configs, flags
from bertline.configs import ConfigError
from bertline.evaluator import batch_score, evaluate, predict
from bertline.evaluator.config import EvaluateConfig, PredictConfig, ScoreConfig
from bertline.pipeline import config as config_lib

RUN = {"data": {"builtin": "tweets"}}


def _cli(module, cls, *argv):
  parser = module.build_parser()
  return flags.config_from_flags(cls, parser.parse_args(list(argv)), parser)


def test_the_command_line_and_the_run_config_give_the_same_config():
  from_flags = _cli(evaluate, EvaluateConfig, "--model-dir", "m", "--data-dir", "d", "--split",
                    "test", "--threshold", "eval_accuracy=0.8", "--threshold", "macro_f1=0.5",
                    "--max-regression", "0.01", "--checkpoint", "latest", "--batch-size", "8")
  run = config_lib.from_dict(RUN, overrides=[
      "evaluate.split=test", "evaluate.thresholds={eval_accuracy: 0.8, macro_f1: 0.5}",
      "evaluate.max_regression=0.01", "evaluate.checkpoint=latest", "evaluate.batch_size=8"])
  # What the kfp component receives, built into the class again on the worker (kfp's JSON
  # turns whole numbers into floats: 8.0).
  settings = {k: float(v) if isinstance(v, int) else v
              for k, v in run.stage_settings("evaluate").items()}
  on_worker = configs.from_settings(EvaluateConfig, settings, "evaluate_settings",
                                    model_dir="m", data_dir="d")
  assert on_worker == from_flags
  assert on_worker.batch_size == 8 and isinstance(on_worker.batch_size, int)
  # The pipeline's own key and the paths a run sets never reach the stage's parameter.
  assert set(run.stage_settings("evaluate")) == {"split", "thresholds", "max_regression",
                                                 "checkpoint", "batch_size"}


def test_one_check_named_as_each_surface_names_the_setting(tmp_path):
  with pytest.raises(ConfigError, match=r"^--threshold acc: unknown metric; choose one of "
                     r"eval_accuracy"):
    _cli(evaluate, EvaluateConfig, "--model-dir", "m", "--data-dir", "d", "--threshold", "acc=1")
  with pytest.raises(ConfigError, match=r"^--max-regression must be 0 or more, got -0.1"):
    _cli(evaluate, EvaluateConfig, "--model-dir", "m", "--data-dir", "d",
         "--max-regression", "-0.1")
  path = tmp_path / "run.yaml"
  path.write_text("data: {builtin: tweets}\nevaluate: {thresholds: {acc: 1}}\n")
  with pytest.raises(ConfigError, match=rf"^{path}\.evaluate\.thresholds\.acc: unknown metric"):
    config_lib.load(str(path))
  with pytest.raises(ConfigError, match=r"^evaluate_settings\.batch_size must be at least 1"):
    configs.from_settings(EvaluateConfig, {"batch_size": 0}, "evaluate_settings")


@pytest.mark.parametrize("spec,message", [
    ("0.9", "--threshold '0.9': expected KEY=VALUE, e.g. --threshold metric=0.9"),
    ("eval_accuracy=x", "--threshold 'eval_accuracy=x': 'x' is not a number")])
def test_a_malformed_threshold_is_a_usage_error(capsys, spec, message):
  with pytest.raises(SystemExit) as exit_:
    _cli(evaluate, EvaluateConfig, "--model-dir", "m", "--data-dir", "d", "--threshold", spec)
  assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_predict_flags_come_from_its_config():
  config = _cli(predict, PredictConfig, "--model", "m", "--data-dir", "d", "--with-guid")
  assert (config.split, config.with_guid, config.with_label, config.output) == (
      "test", True, False, "")
  assert set(flags.flag_names(PredictConfig)) == {
      "--model", "--data-dir", "--split", "--output", "--with-guid", "--with-label",
      "--batch-size"}


def test_score_reads_repeated_inputs_and_a_run_config_may_give_one_pattern():
  config = batch_score.config_from_args(["--model", "m", "--input", "a.txt", "--input", "b.txt",
                                         "--output", "o", "--format", "tsv", "--text-a", "text"])
  assert config.inputs == ("a.txt", "b.txt") and config.input_spec.has_header
  run = config_lib.from_dict(RUN, overrides=["score.input=new/{date}.txt"])
  assert run.score.input == ["new/{date}.txt"]
  assert run.stage_settings("score") == {"input": ["new/{date}.txt"]}


def test_score_row_layout_checks_name_flags_or_keys():
  with pytest.raises(ConfigError, match=r"^--no-header: columns \['text'\] are names, which need "
                     r"a header line; give column indices \(0, 1, \.\.\.\) or drop it"):
    batch_score.config_from_args(["--model", "m", "--input", "a", "--output", "o", "--format",
                                  "tsv", "--text-a", "text", "--no-header"])
  with pytest.raises(ConfigError, match=r"\)\.score\.header false: columns \['text'\] are names"):
    config_lib.from_dict(RUN, overrides=["score.input=a", "score.format=tsv", "score.text_a=text",
                                         "score.header=false"])
  with pytest.raises(ConfigError, match=r"^--batch-size 0: must be positive"):
    batch_score.config_from_args(["--model", "m", "--input", "a", "--output", "o",
                                  "--batch-size", "0"])
  with pytest.raises(ValueError, match=r"--input: give at least one"):
    ScoreConfig("m", [], "o").check()
