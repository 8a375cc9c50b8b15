"""Compiling a run config to kfp YAML, and the checked-in pipeline.yaml, for the pipeline tests."""

import os

from bertline.pipeline import compile as compile_lib


ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CHECKED_IN = os.path.join(ROOT, "pipeline.yaml")


def compile_yaml(tmp_path, config):
  path = str(tmp_path / "pipeline.yaml")
  compile_lib.compile_pipeline(config, path)
  with open(path) as f:
    return f.read()


MRPC = os.path.join(ROOT, "examples", "kubeflow_mrpc.yaml")


def posted(requests, path):
  return [body for method, p, body in requests if method == "POST" and p == path]
