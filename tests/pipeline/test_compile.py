"""pipeline/compile.py: pipeline.yaml is compiled from one place and guarded against drift."""

from bertline.pipeline import config as config_lib
from tests.pipeline.helpers import CHECKED_IN, compile_yaml


def _without_sdk_version(text):
  """The compiled pipeline less the line naming the kfp release that compiled it."""
  return [line for line in text.splitlines() if not line.startswith("sdkVersion: kfp-")]


def test_checked_in_pipeline_yaml_is_a_fresh_compile(tmp_path):
  fresh = compile_yaml(tmp_path, config_lib.defaults())
  with open(CHECKED_IN) as f:
    checked_in = f.read()
  # Any kfp 2.17.x may compile it (pyproject.toml: >=2.17,<2.18); nothing else may differ.
  assert "sdkVersion: kfp-2.17." in checked_in
  assert _without_sdk_version(fresh) == _without_sdk_version(checked_in), ("pipeline.yaml differs from a fresh compile: run `make pipeline` "
                               "(bertline compile --output pipeline.yaml) and commit it")
