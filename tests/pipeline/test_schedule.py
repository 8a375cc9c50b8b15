"""pipeline/schedule.py: crons, checks before sending, and the requests a KFP server gets."""

import io
import json

import pytest

from bertline.pipeline import schedule
from tests.pipeline.helpers import MRPC, posted


@pytest.mark.parametrize("cron,vertex,kubeflow", [
    ("0 3 * * 1", "0 3 * * 1", "0 0 3 * * 1"),
    ("  */15   2-5 1,15 * MON-FRI ", "*/15 2-5 1,15 * MON-FRI", "0 */15 2-5 1,15 * MON-FRI"),
    ("30 23 28-31 * *", "30 23 28-31 * *", "0 30 23 28-31 * *"),
    ("0 0 1 jan,JUL *", "0 0 1 jan,JUL *", "0 0 0 1 jan,JUL *"),
    ("TZ=UTC 0 6 * * 0", "TZ=UTC 0 6 * * 0", "0 0 6 * * 0"),
])
def test_valid_crons(cron, vertex, kubeflow):
  parsed = schedule.parse_cron(cron)
  assert parsed.vertex() == vertex
  assert parsed.kubeflow() == kubeflow


def test_time_zone_goes_to_vertex_and_is_refused_by_kubeflow():
  parsed = schedule.parse_cron("TZ=Europe/Paris 0 3 * * 1")
  assert parsed.vertex() == "TZ=Europe/Paris 0 3 * * 1"
  with pytest.raises(ValueError, match=r"TZ=Europe/Paris: Kubeflow recurring runs .*UTC"):
    parsed.kubeflow()
  assert schedule.parse_cron("CRON_TZ=America/New_York 0 3 * * *").timezone == "America/New_York"


@pytest.mark.parametrize("cron,message", [
    ("0 0 3 * * 1", r"has 6 fields; write five.*drop the seconds"),
    ("0 3 * *", r"has 4 fields"),
    ("", r"write five fields"),
    ("@weekly", r"write five fields"),
    ("60 3 * * 1", r"minute 60 is out of range 0-59"),
    ("0 24 * * 1", r"hour 24 is out of range 0-23"),
    ("0 3 0 * *", r"day-of-month 0 is out of range 1-31"),
    ("0 3 * 13 *", r"month 13 is out of range 1-12"),
    ("0 3 * * 7", r"day-of-week 7 .* use 0 or SUN"),
    ("0 3 * * FUN", r"day-of-week field has 'FUN'; use 0-6 or SUN-SAT"),
    ("*/0 3 * * *", r"minute step '0' must be a positive number"),
    ("0 5-2 * * *", r"hour range 5-2 runs backwards"),
    ("TZ=Mars/Olympus 0 3 * * 1", r"unknown time zone 'Mars/Olympus'"),
])
def test_invalid_crons_say_which_field(cron, message):
  with pytest.raises(ValueError, match=message):
    schedule.parse_cron(cron)


def test_schedule_on_kubeflow_sends_six_field_cron_and_config_arguments(kfp_server):
  host, requests = kfp_server
  out = io.StringIO()
  assert schedule.main(["--config", MRPC, "--cron", "15 4 * * 1", "--host", host,
                        "--set", "train.max_steps=9"], out=out) == 0
  assert "rec-1 (0 15 4 * * 1)" in out.getvalue()
  (body,) = posted(requests, "/apis/v2beta1/recurringruns")
  assert body["trigger"]["cron_schedule"]["cron"] == "0 15 4 * * 1"
  assert body["max_concurrency"] == 1
  assert body["no_catchup"] is True
  params = body["runtime_config"]["parameters"]
  assert params["data_path"] == "gs://my-bucket/glue/MRPC/{date}"
  assert params["run_date"] == ""  # each scheduled run uses its own date
  assert params["baseline"] == "last_pushed"
  assert params["train_settings"]["max_steps"] == 9
  assert body["runtime_config"]["pipeline_root"] == "gs://my-bucket/pipeline_root"
  executors = body["pipeline_spec"]["deploymentSpec"]["executors"]
  assert {e["container"]["image"] for e in executors.values()} == {
      "us-docker.pkg.dev/my-project/bertline/bertline:0.1.0"}


def test_schedule_refuses_a_time_zone_on_kubeflow_before_sending(kfp_server):
  host, requests = kfp_server
  with pytest.raises(ValueError, match="TZ=Europe/Paris"):
    schedule.main(["--config", MRPC, "--host", host])  # the config's cron has TZ=Europe/Paris
  assert requests == []


def test_vertex_dry_run_keeps_the_time_zone():
  out = io.StringIO()
  assert schedule.main(["--config", MRPC, "--vertex", "--project", "p", "--region",
                        "europe-west4", "--dry-run"], out=out) == 0
  plan = json.loads(out.getvalue())
  assert plan["cron"] == "TZ=Europe/Paris 0 3 * * 1" and plan["target"] == "vertex"
