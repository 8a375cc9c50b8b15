"""`bertline schedule`: recurring retraining on Kubeflow Pipelines or Vertex AI Pipelines.

    bertline schedule --config examples/kubeflow_mrpc.yaml --cron "TZ=Europe/Paris 0 3 * * 1" \\
        --vertex --project P --region us-central1

Users write one cron, five fields (minute hour day-of-month month
day-of-week), Vertex's form, optionally prefixed `TZ=Area/City`. Vertex takes
it as is; Kubeflow's recurring runs take six fields, seconds first, in the
cluster's time (UTC): it is converted, and a non-UTC zone is refused there
rather than silently shifted (daylight saving time moves a fixed offset).

Each scheduled run resolves its own date: a data path with `{date}` reads that
day's prefix, so a cached result of last week's data is never reused; with
`train.warm_start` it starts from the last pushed model, and with
`evaluate.baseline: last_pushed` the candidate must beat that model before it
is pushed.
"""

import json
import re
import tempfile
import zoneinfo
from typing import Any, List, NamedTuple, Optional, Tuple

from bertline import flags
from bertline.pipeline import config as config_lib
from bertline.pipeline import submit

# name, low, high, names (index = value) of the five fields.
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_UTC = ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Zulu", "Etc/Zulu")


class Cron(NamedTuple):
  """A validated five-field cron and its time zone ("" when none was given)."""

  timezone: str
  fields: Tuple[str, ...]

  def vertex(self) -> str:
    """Vertex AI's form: `TZ=Zone m h dom mon dow`."""
    expr = " ".join(self.fields)
    return f"TZ={self.timezone} {expr}" if self.timezone else expr

  def kubeflow(self) -> str:
    """Kubeflow's recurring-run form: six fields, seconds first, in UTC."""
    if self.timezone and self.timezone not in _UTC:
      raise ValueError(
          f"--cron TZ={self.timezone}: Kubeflow recurring runs fire in the cluster's time (UTC) "
          "and take no time zone; write the hours in UTC without the TZ= prefix, or schedule "
          "on Vertex AI (--vertex), which honours it")
    return "0 " + " ".join(self.fields)


def _value(text: str, low: int, high: int, names, field: str, cron: str) -> int:
  upper = text.upper()
  if names and upper in names:
    return names.index(upper) + (low if names is _MONTHS else 0)
  if not text.isdigit():
    valid = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    raise ValueError(f"--cron {cron!r}: {field} field has {text!r}; use {valid}")
  value = int(text)
  if field == "day-of-week" and value == 7:
    raise ValueError(f"--cron {cron!r}: day-of-week 7 is Sunday only in some crons; use 0 or SUN")
  if not low <= value <= high:
    raise ValueError(f"--cron {cron!r}: {field} {value} is out of range {low}-{high}")
  return value


def _check_field(text: str, field: str, low: int, high: int, names, cron: str) -> None:
  for part in text.split(","):
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
      raise ValueError(f"--cron {cron!r}: {field} step {step!r} must be a positive number")
    if base == "*":
      continue
    start, dash, end = base.partition("-")
    first = _value(start, low, high, names, field, cron)
    if dash:
      last = _value(end, low, high, names, field, cron)
      if last < first:
        raise ValueError(f"--cron {cron!r}: {field} range {base} runs backwards")


def parse_cron(text: str) -> Cron:
  """Validates a five-field cron (optionally `TZ=Zone ` first); errors say which field and why."""
  cron = " ".join(text.split())
  timezone = ""
  match = re.match(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$", cron)
  if match:
    timezone, cron_fields = match.group(1), match.group(2)
    try:
      zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
      raise ValueError(f"--cron {text!r}: unknown time zone {timezone!r}; use an IANA name such "
                       "as Europe/Paris or UTC") from None
  else:
    cron_fields = cron
  fields = tuple(cron_fields.split())
  if not cron_fields or cron_fields.startswith("@"):
    raise ValueError(f"--cron {text!r}: write five fields (minute hour day-of-month month "
                     "day-of-week), e.g. '0 3 * * 1' for Mondays at 03:00")
  if len(fields) != 5:
    hint = (" (Kubeflow's six-field form with seconds first is written for you: drop the "
            "seconds)" if len(fields) == 6 else "")
    raise ValueError(f"--cron {text!r} has {len(fields)} fields; write five: minute hour "
                     f"day-of-month month day-of-week, e.g. '0 3 * * 1'{hint}")
  for value, (field, low, high, names) in zip(fields, FIELDS):
    _check_field(value, field, low, high, names, text)
  return Cron(timezone, fields)


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline schedule",
      description="Schedule recurring retraining: each run reads that day's data (a {date} data "
      "path), may warm-start from the last pushed model, and pushes only a model that beats it.",
      epilog="Example: bertline schedule --config examples/kubeflow_mrpc.yaml "
      "--cron 'TZ=Europe/Paris 0 3 * * 1' --vertex --project my-project --region us-central1")
  submit.add_target_arguments(parser, run_date=False)
  parser.add_argument("--cron", help="five-field cron, Vertex's form, optionally 'TZ=Zone ...' "
                      "(default: the config's schedule.cron)")
  parser.add_argument("--name", help="schedule name (default: <pipeline.name>-schedule)")
  return parser


def main(argv: List[str], out: Optional[Any] = None) -> int:
  args = build_parser().parse_args(argv)
  config = config_lib.load(args.config, args.overrides)
  text = args.cron or config.schedule.cron
  if not text:
    raise ValueError("no cron: pass --cron '0 3 * * 1' or set schedule.cron in the config")
  cron = parse_cron(text)
  expression = cron.vertex() if args.vertex else cron.kubeflow()
  submit.check_target(args, config)
  arguments = submit.run_arguments(config)
  name = args.name or f"{config.pipeline.name}-schedule"
  with tempfile.TemporaryDirectory() as tmp:
    package = submit.compiled(config, tmp)
    if args.dry_run:
      print(json.dumps({"target": "vertex" if args.vertex else args.host, "name": name,
                        "cron": expression, "max_concurrency": config.schedule.max_concurrency,
                        "arguments": arguments}, indent=2, sort_keys=True), file=out)
      return 0
    if args.vertex:
      job = submit.vertex_job(submit.vertex_sdk(), args, config, package, arguments)
      schedule = job.create_schedule(display_name=name, cron=expression,
                                     max_concurrent_run_count=config.schedule.max_concurrency,
                                     service_account=args.service_account)
      print(f"schedule: Vertex AI schedule {schedule.resource_name} ({expression})", file=out)
    else:
      client = submit.kfp_client(args.host)
      experiment = client.create_experiment(args.experiment)
      run = client.create_recurring_run(
          experiment_id=experiment.experiment_id, job_name=name, cron_expression=expression,
          max_concurrency=config.schedule.max_concurrency, pipeline_package_path=package,
          params=arguments, enable_caching=config.pipeline.caching,
          pipeline_root=config.pipeline.pipeline_root or None,
          no_catchup=True)  # A cluster that was down does not replay every missed week.
      print(f"schedule: Kubeflow recurring run {run.recurring_run_id} ({expression})", file=out)
  return 0
