"""pipeline/run_classifier_config.py: every flag of Google's run_classifier.py (read from the
bert-tensorflow package's own source), with its defaults, in absl's syntax — and nothing else."""

import ast
import os

import bert  # bert-tensorflow, the reference: a test dependency (make venv); missing, it fails
import pytest

from bertline.configs import SettingError
from bertline.pipeline import run_classifier_config as rc_config

REQUIRED = ["--data_dir=d", "--bert_config_file=c.json", "--task_name=MRPC",
            "--vocab_file=v.txt", "--output_dir=o"]


def _googles_flags():
  """{name: (DEFINE kind, default)} of run_classifier.py's flags, from its source."""
  with open(os.path.join(os.path.dirname(bert.__file__), "run_classifier.py")) as f:
    tree = ast.parse(f.read())
  found = {}
  for node in ast.walk(tree):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("DEFINE_")):
      name, default = (ast.literal_eval(a) for a in node.args[:2])
      found[name] = (node.func.attr[len("DEFINE_"):], default)
  return found


def test_the_flags_are_run_classifiers_with_its_defaults():
  google = _googles_flags()
  assert len(google) == 26  # bert-tensorflow 1.0.4's run_classifier.py
  ours = {name: f for name, f in rc_config.RunClassifierConfig.__dataclass_fields__.items()}
  assert set(ours) == set(google)
  python_type = {"string": str, "bool": bool, "integer": int, "float": float}
  config = rc_config.config_from_args(REQUIRED)
  for name, (kind, default) in google.items():
    assert ours[name].type in (python_type[kind].__name__, python_type[kind]), name
    if name not in ("data_dir", "bert_config_file", "task_name", "vocab_file", "output_dir"):
      assert getattr(config, name) == ("" if default is None else default), name


def test_every_flag_is_accepted_in_each_of_absls_spellings():
  google = _googles_flags()
  value = {"string": "x", "bool": "true", "integer": "7", "float": "0.5"}
  argv = [f"--{name}={value[kind]}" for name, (kind, _) in google.items()
          if name != "warmup_proportion"] + ["--warmup_proportion", "0.25"]
  config = rc_config.config_from_args(argv)
  assert (config.task_name, config.do_train, config.train_batch_size) == ("x", True, 7)
  assert (config.num_train_epochs, config.warmup_proportion) == (0.5, 0.25)
  config = rc_config.config_from_args(REQUIRED + [
      "--do_train", "--nodo_lower_case", "-do_eval=True", "--do_predict=false",
      "-max_seq_length", "64", "--learning_rate=2e-5", "--use_tpu=0"])
  assert (config.do_train, config.do_lower_case, config.do_eval, config.do_predict) == \
      (True, False, True, False)
  assert (config.max_seq_length, config.learning_rate, config.use_tpu) == (64, 2e-5, False)


@pytest.mark.parametrize("argv, message", [
    (["--do_trian=true"], "unknown flag --do_trian; did you mean --do_train?"),
    (["--max-seq-length=64"], "unknown flag --max-seq-length; did you mean --max_seq_length?"),
    (["--max_seq_length=long"], "--max_seq_length=long: expected an integer"),
    (["--do_train=maybe"], "--do_train=maybe: expected true or false"),
    (["--max_seq_length"], "--max_seq_length needs a value"),
    (["MRPC"], "unexpected argument 'MRPC'"),
])
def test_what_absl_refuses_is_refused_in_one_line_with_exit_2(argv, message, capsys):
  with pytest.raises(SystemExit) as e:
    rc_config.config_from_args(REQUIRED + argv)
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and message in err, err


def test_required_flags_and_bad_values_are_named_as_run_classifier_names_them(capsys):
  with pytest.raises(SystemExit) as e:
    rc_config.config_from_args(REQUIRED[1:])
  assert e.value.code == 2 and "flag --data_dir must have a value" in capsys.readouterr().err
  with pytest.raises(SettingError, match=r"^--max_seq_length must be at least 3, got 2"):
    rc_config.config_from_args(REQUIRED + ["--max_seq_length=2"])
  with pytest.raises(SettingError, match=r"^--warmup_proportion must be in \[0, 1\), got 1.0"):
    rc_config.config_from_args(REQUIRED + ["--warmup_proportion=1"])


def test_help_lists_every_flag_with_its_default(capsys):
  with pytest.raises(SystemExit) as e:
    rc_config.config_from_args(["--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for name in _googles_flags():
    assert f"--{name} " in out, name
  assert "--train_batch_size" in out and "(default: 32)" in out and "[required]" in out
