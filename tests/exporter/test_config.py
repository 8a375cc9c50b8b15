"""exporter/config.py: export's and push's settings, declared once for every surface."""

from __future__ import annotations

import dataclasses

import pytest

from bertline import configs, flags
from bertline.configs import ConfigError
from bertline.exporter import export, push
from bertline.exporter.config import ExportConfig, PushConfig
from bertline.pipeline import config as config_lib

RUN = {"data": {"builtin": "tweets"}}


def _cli(module, cls, *argv):
  parser = module.build_parser()
  return flags.config_from_flags(cls, parser.parse_args(list(argv)), parser)


@pytest.mark.parametrize("section,cls", sorted(config_lib.STAGE_SECTIONS.items()))
def test_every_stage_section_is_its_stages_own_class(section, cls):
  """A setting added to a stage's class is at once a flag, a run-config key and a kfp key."""
  run = config_lib.from_dict(RUN)
  assert isinstance(getattr(run, section), cls)
  keys = {f.name for f in dataclasses.fields(cls)} - set(cls.RUN_KEYS)
  yaml_keys = set(run.to_dict()[section])
  assert keys <= yaml_keys  # the run config's section: the class's keys (plus the pipeline's own)
  declared = {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli")}
  assert {flags.flag_name(f) for f in dataclasses.fields(cls) if f.name in declared} == set(
      flags.flag_names(cls))


def test_push_flags_and_keys_share_their_checks(tmp_path):
  config = _cli(push, PushConfig, "--model", "e/3", "--to", "gs://b/m", "--skip-serving-check",
                "--vertex-model", "sentiment", "--project", "p", "--region", "europe-west4")
  assert config.check_serving is False and config.vertex().project == "p"
  assert _cli(push, PushConfig, "--model", "e/3", "--to", "r", "--no-check-serving"
              ).check_serving is False
  with pytest.raises(ConfigError, match=r"^--vertex-model needs --project and --region, e\.g\. "
                     r"--project my-project --region europe-west4"):
    _cli(push, PushConfig, "--model", "e/3", "--to", "gs://b/m", "--vertex-model", "m")
  with pytest.raises(ConfigError, match=r"push\.vertex_model needs push\.vertex_project and "
                     r"push\.vertex_region, e\.g\. push\.vertex_project my-project"):
    config_lib.from_dict(RUN, overrides=["push.to=gs://b/m", "push.vertex_model=m"])
  with pytest.raises(ConfigError, match=r"^--serving-timeout 0 must be positive"):
    _cli(push, PushConfig, "--model", "e/3", "--to", "r", "--serving-timeout", "0")
  run = config_lib.from_dict(RUN, overrides=["push.force=true", "push.check_serving=false"])
  assert run.stage_settings("push") == {"check_serving": False, "force": True, "to": "registry"}


def test_export_checks_its_settings_for_a_library_caller_too(tmp_path):
  assert _cli(export, ExportConfig, "--model-dir", "m", "--export-dir", "e", "--version", "7",
              "--quantize", "int8").version == 7
  with pytest.raises(ConfigError, match=r"^--warmup-examples 0 must be at least 1"):
    export.export_model("m", str(tmp_path), warmup_examples=0)
  with pytest.raises(ConfigError, match=r"export_settings\.quantize: 'int4' is not one of"):
    configs.from_settings(ExportConfig, {"quantize": "int4"}, "export_settings")


def test_the_configs_load_without_tensorflow():
  import subprocess
  import sys
  script = ("import sys\nimport bertline\n"
            "for name in ('PreprocessConfig', 'TrainConfig', 'EvaluateConfig', 'PredictConfig', "
            "'ScoreConfig', 'ExportConfig', 'PushConfig', 'RunConfig'):\n"
            "  getattr(bertline, name)\n"
            "print(sorted(m for m in ('tensorflow', 'apache_beam') if m in sys.modules))\n")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
  assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
