"""`bertline submit`: run the pipeline on Kubeflow Pipelines or Vertex AI Pipelines.

    bertline submit --config examples/kubeflow_mrpc.yaml --host https://kfp.example.com
    bertline submit --config examples/kubeflow_mrpc.yaml --vertex --project P --region us-central1

The pipeline is compiled for the config (its image and resources) and
submitted with the config's values as the run's parameters. Kubeflow needs
`kfp` (the `pipeline` extra: pip install -e '.[pipeline]'); Vertex needs
`google-cloud-aiplatform`. Credentials are the environment's (kfp's own
login / Application Default Credentials): none is read from the config.
"""

import argparse
import json
import logging
import os
import tempfile
from typing import Any, Dict, List, Optional

from bertline import fileio, flags, resources
from bertline.exporter import vertex_registry
from bertline.pipeline import config as config_lib
from bertline.pipeline import definition
from bertline.pipeline.compile import compile_pipeline

log = logging.getLogger("bertline.pipeline")


def add_target_arguments(parser: argparse.ArgumentParser, run_date: bool = True) -> None:
  """--host | --vertex --project --region, shared with `bertline schedule` (which has no
  --run-date: each scheduled run uses its own date)."""
  config_lib.add_config_arguments(parser)
  target = parser.add_mutually_exclusive_group(required=True)
  target.add_argument("--host", help="Kubeflow Pipelines API endpoint, e.g. https://kfp.example.com")
  target.add_argument("--vertex", action="store_true", help="submit to Vertex AI Pipelines")
  parser.add_argument("--project", help="Google Cloud project (with --vertex)")
  parser.add_argument("--region", help="Vertex AI region, e.g. us-central1 (with --vertex)")
  parser.add_argument("--service-account", help="service account the Vertex tasks run as")
  parser.add_argument("--experiment", default="bertline",
                      help="Kubeflow experiment / Vertex experiment name (default bertline)")
  if run_date:
    parser.add_argument("--run-date", default="",
                        help="YYYY-MM-DD filled into a {date} data path (default: the run's "
                        "date)")
  parser.add_argument("--dry-run", action="store_true",
                      help="compile and print what would be submitted, without contacting anyone")


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline submit",
      description="Compile the pipeline for a run config and submit one run to Kubeflow "
      "Pipelines (--host) or Vertex AI Pipelines (--vertex --project --region).",
      epilog="Example: bertline submit --config examples/kubeflow_mrpc.yaml --vertex "
      "--project my-project --region us-central1")
  add_target_arguments(parser)
  return parser


def check_target(args: argparse.Namespace, config: config_lib.RunConfig) -> None:
  """Errors for what cannot work remotely, before anything is compiled or sent."""
  if args.vertex:
    missing = [flag for flag, value in (("--project", args.project), ("--region", args.region))
               if not value]
    if missing:
      raise ValueError(f"--vertex needs {' and '.join(missing)}, e.g. --project my-project "
                       "--region us-central1")
    if not config.pipeline.pipeline_root.startswith("gs://"):
      raise ValueError(f"pipeline.pipeline_root is {config.pipeline.pipeline_root!r}: Vertex AI "
                       "keeps artifacts in Cloud Storage; set it to gs://BUCKET/pipeline_root")
  elif args.project or args.region:
    raise ValueError("--project and --region go with --vertex; Kubeflow needs only --host")
  local = [(key, value) for key, value in (
      ("data.path", "" if config.data.builtin else config.data.path),
      ("push.to", config.push.to),
      ("model.init_checkpoint", "" if config.model.init_checkpoint == resources.MINILM
       else config.model.init_checkpoint)) if value and not fileio.is_remote(value)]
  for key, value in local:
    message = (f"{key} {value!r} is a local path: the pipeline's tasks run in containers that "
               "cannot see this machine; use gs://...")
    if args.vertex:
      raise ValueError(message)
    log.warning("%s (fine only if the path is mounted into the Kubeflow pods)", message)


def run_arguments(config: config_lib.RunConfig, run_date: str = "") -> Dict[str, Any]:
  """The run's parameter values (definition.parameters of the config)."""
  values = definition.parameters(config)
  values["run_date"] = run_date
  return values


def kfp_client(host: str):
  try:
    import kfp  # the optional pipeline extra
  except ImportError as e:
    raise ValueError("submitting to Kubeflow needs kfp: pip install -e '.[pipeline]' in "
                     "your bertline clone (kfp 2.17)") from e
  return kfp.Client(host=host)


def vertex_sdk():
  return vertex_registry.sdk("--vertex")


def vertex_job(aiplatform, args: argparse.Namespace, config: config_lib.RunConfig,
               package: str, arguments: Dict[str, Any]):
  aiplatform.init(project=args.project, location=args.region)
  return aiplatform.PipelineJob(
      display_name=config.pipeline.name, template_path=package,
      pipeline_root=config.pipeline.pipeline_root, parameter_values=arguments,
      enable_caching=config.pipeline.caching)


def compiled(config: config_lib.RunConfig, tmp: str) -> str:
  return compile_pipeline(config, os.path.join(tmp, "pipeline.yaml"))


def main(argv: List[str], out: Optional[Any] = None) -> int:
  args = build_parser().parse_args(argv)
  config = config_lib.load(args.config, args.overrides)
  check_target(args, config)
  arguments = run_arguments(config, args.run_date)
  with tempfile.TemporaryDirectory() as tmp:
    package = compiled(config, tmp)
    if args.dry_run:
      print(json.dumps({"target": "vertex" if args.vertex else args.host,
                        "pipeline": config.pipeline.name, "image": config.pipeline.image,
                        "arguments": arguments}, indent=2, sort_keys=True), file=out)
      return 0
    if args.vertex:
      job = vertex_job(vertex_sdk(), args, config, package, arguments)
      job.submit(service_account=args.service_account, experiment=args.experiment)
      print(f"submit: Vertex AI pipeline job {job.resource_name}", file=out)
    else:
      run = kfp_client(args.host).create_run_from_pipeline_package(
          package, arguments=arguments, run_name=f"{config.pipeline.name} {args.run_date}".strip(),
          experiment_name=args.experiment, enable_caching=config.pipeline.caching,
          pipeline_root=config.pipeline.pipeline_root or None)
      print(f"submit: Kubeflow run {run.run_id} on {args.host}", file=out)
  return 0
