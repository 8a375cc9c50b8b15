"""bertline/configs.py: one `setting()` declares a value's default and checks; the same check's
message names the setting as each surface calls it (flag, YAML key, kfp parameter)."""

import dataclasses
from typing import Dict, List, Optional

import pytest

from bertline import configs
from bertline.configs import ConfigError, SettingError, setting


@dataclasses.dataclass
class _Stage:
  """A stage config as the real ones are written."""
  RUN_KEYS = ("output_dir",)

  output_dir: str = setting("", "where it goes", required=True)
  max_seq_length: int = setting(128, "tokens", minimum=3,
                                below="{key} {value} is too small: use e.g. 128.")
  rate: float = setting(0.5, "a rate", minimum=0)
  mode: str = setting("fast", "how", choices=("fast", "exact"))
  header: bool = setting(True, "the first line is a header")
  thresholds: Dict[str, float] = setting({}, "metric floors")
  names: List[str] = setting([], "names")
  seed: Optional[int] = setting(None, "a seed")

  def __post_init__(self):
    configs.check_settings(self)
    if not self.header and self.mode == "exact":
      raise SettingError("mode", "{key} exact needs a header: drop {off:header}.")
    for name in self.thresholds:
      if name != "accuracy":
        raise SettingError("thresholds", f"{{item:{name}}}: unknown metric.")


def test_declared_checks_run_and_name_the_setting_on_each_surface():
  with pytest.raises(SettingError, match="^max_seq_length 2 is too small: use e.g. 128.$") as e:
    _Stage(max_seq_length=2)
  assert str(e.value.named(configs.as_flag)) == "--max-seq-length 2 is too small: use e.g. 128."
  assert str(e.value.named("run.yaml.data.max_seq_length")).startswith(
      "run.yaml.data.max_seq_length 2")
  with pytest.raises(SettingError, match=r"^rate must be 0 or more, got -1.0.$"):
    _Stage(rate=-1.0)
  with pytest.raises(SettingError, match=r"^rate must be a finite number, got nan.$"):
    _Stage(rate=float("nan"))
  with pytest.raises(SettingError, match=r"^mode: 'slow' is not one of 'fast', 'exact'$"):
    _Stage(mode="slow")


def test_cross_setting_messages_name_the_other_setting_and_the_entry_per_surface():
  with pytest.raises(SettingError) as e:
    _Stage(header=False, mode="exact")
  assert str(e.value.named(configs.as_flag)) == "--mode exact needs a header: drop --no-header."
  assert str(e.value.named(lambda f: f"score.{f}")) == \
      "score.mode exact needs a header: drop score.header false."
  with pytest.raises(SettingError) as e:
    _Stage(thresholds={"acc": 0.5})
  assert str(e.value.named(configs.as_flag)) == "--thresholds acc: unknown metric."
  assert str(e.value.named(lambda f: f"evaluate.{f}")) == "evaluate.thresholds.acc: unknown metric."


def test_from_dict_checks_every_key_and_type_and_names_its_path():
  stage = configs.from_dict(_Stage, {"output_dir": "o", "rate": 1, "names": ["a"]}, "s.yaml")
  assert stage.rate == 1.0 and isinstance(stage.rate, float) and stage.names == ["a"]
  with pytest.raises(ConfigError, match=r"^s.yaml: unknown key 'max_seq_len'; valid keys are: "
                                        r"header, max_seq_length, mode"):
    configs.from_dict(_Stage, {"max_seq_len": 64}, "s.yaml")
  for value, expected in (("64", "expected an integer, got '64'"),
                          (True, "expected an integer, got True"),
                          (64.5, "expected an integer, got 64.5")):
    with pytest.raises(ConfigError, match=rf"^s.yaml.max_seq_length: {expected}$"):
      configs.from_dict(_Stage, {"max_seq_length": value}, "s.yaml")
  with pytest.raises(ConfigError, match=r"^s.yaml.names\[1\]: expected a string, got 3$"):
    configs.from_dict(_Stage, {"names": ["a", 3]}, "s.yaml")
  with pytest.raises(ConfigError, match=r"^s.yaml.max_seq_length 1 is too small"):
    configs.from_dict(_Stage, {"max_seq_length": 1}, "s.yaml")


def test_kfp_struct_doubles_become_whole_numbers_again_and_only_where_an_int_is_declared():
  # kfp hands dict parameters over as protobuf Structs: every number a double.
  settings = {"max_seq_length": 64.0, "rate": 2.0, "seed": 7.0, "mode": "exact"}
  assert configs.whole_numbers(_Stage, settings) == {"max_seq_length": 64, "mode": "exact",
                                                     "rate": 2.0, "seed": 7}
  assert type(configs.whole_numbers(_Stage, settings)["rate"]) is float
  stage = configs.from_settings(_Stage, settings, "stage_settings", output_dir="/run/out")
  assert (stage.max_seq_length, stage.seed, stage.output_dir) == (64, 7, "/run/out")
  with pytest.raises(ConfigError, match=r"^stage_settings.max_seq_length: expected an integer, "
                                        r"got 64.5$"):
    configs.from_settings(_Stage, {"max_seq_length": 64.5}, "stage_settings")


def test_run_settings_leave_out_what_each_run_sets_and_defaults_are_not_shared():
  stage = _Stage(output_dir="o")
  assert "output_dir" not in configs.run_settings(stage)
  assert configs.run_settings(stage)["max_seq_length"] == 128
  stage.names.append("x")
  assert _Stage().names == [] and _Stage().thresholds == {}
