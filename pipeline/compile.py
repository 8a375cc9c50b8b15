"""`bertline compile`: the Kubeflow pipeline as pipeline.yaml (IR YAML for Kubeflow and Vertex).

Without --config the pipeline is compiled from the default config (image
bertline:0.1.0, a T4 GPU for training): its parameters are then filled at
submission. The checked-in pipeline.yaml is exactly what `make pipeline`
writes; tests/pipeline/test_compile.py fails when it drifts.
"""

import os
import tempfile
from typing import List, Optional

from bertline import fileio, flags
from bertline.pipeline import config as config_lib


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline compile",
      description="Compile the bertline Kubeflow pipeline (kfp v2) to a YAML file that Kubeflow "
      "Pipelines and Vertex AI Pipelines run.",
      epilog="Example: bertline compile --output pipeline.yaml; "
      "bertline compile --config examples/demo_tweets.yaml --set pipeline.image=IMAGE --output p.yaml")
  parser.add_argument("--config", help="run config YAML giving the image, resources and the "
                      "parameters' defaults (default: built-in defaults)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                      help="override a config value, e.g. --set pipeline.image=gcr.io/p/bertline:1")
  parser.add_argument("--output", default="pipeline.yaml", help="where to write (default pipeline.yaml)")
  return parser


def load_config(path: Optional[str], overrides: List[str]) -> config_lib.RunConfig:
  """The config to compile: a file, or the defaults (data filled at submission)."""
  if path:
    return config_lib.load(path, overrides)
  return config_lib.defaults(overrides)


def compile_pipeline(config: config_lib.RunConfig, output: str) -> str:
  """Compiles the pipeline for `config` to `output`, atomically; returns the path."""
  if fileio.isdir(output):
    raise IsADirectoryError(f"--output {output} is a directory: give the file to write, e.g. "
                            f"{fileio.join(output, 'pipeline.yaml')}")
  from kfp import compiler  # the optional pipeline extra
  from bertline.pipeline import pipeline  # kfp, as above
  with tempfile.TemporaryDirectory() as tmp:
    tmp_file = os.path.join(tmp, "pipeline.yaml")
    compiler.Compiler().compile(pipeline.build(config), package_path=tmp_file)
    with open(tmp_file, "rb") as f:
      fileio.write_bytes_atomic(output, f.read())
  return output


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  config = load_config(args.config, args.overrides)
  path = compile_pipeline(config, args.output)
  print(f"compile: wrote {path} (image {config.pipeline.image})")
  return 0
