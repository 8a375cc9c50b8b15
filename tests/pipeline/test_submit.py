"""pipeline/submit.py: one run sent to Kubeflow (a fake KFP server on loopback records it), and
the checks that refuse a Vertex AI submission before anything is sent."""

import io
import sys

import pytest

from bertline.pipeline import submit
from tests.pipeline.helpers import MRPC, posted


def test_submit_to_kubeflow_creates_one_run(kfp_server):
  host, requests = kfp_server
  out = io.StringIO()
  assert submit.main(["--config", MRPC, "--host", host, "--run-date", "2026-11-23"], out=out) == 0
  assert "Kubeflow run run-1" in out.getvalue()
  (body,) = posted(requests, "/apis/v2beta1/runs")
  assert body["runtime_config"]["parameters"]["run_date"] == "2026-11-23"
  assert body["pipeline_spec"]["pipelineInfo"]["name"] == "bertline-mrpc"


def test_vertex_checks(tmp_path):
  with pytest.raises(ValueError, match=r"--vertex needs --region"):
    submit.main(["--config", MRPC, "--vertex", "--project", "p"])
  with pytest.raises(ValueError, match=r"push\.to 'registry' is a local path"):
    submit.main(["--config", MRPC, "--vertex", "--project", "p", "--region", "r",
                 "--set", "push.to=registry", "--set", "push.vertex_model="])
  with pytest.raises(ValueError, match=r"pipeline\.pipeline_root .*gs://BUCKET"):
    submit.main(["--config", MRPC, "--vertex", "--project", "p", "--region", "r",
                 "--set", "pipeline.pipeline_root="])


def test_vertex_without_its_sdk_names_the_extra(monkeypatch):
  # The SDK is installed for the tests: hide it as if absent (an entry of None in
  # sys.modules makes an import fail; the attribute would still satisfy `from ... import`).
  import google.cloud
  monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)
  monkeypatch.delattr(google.cloud, "aiplatform", raising=False)
  with pytest.raises(ValueError, match=r"--vertex needs the Vertex AI SDK \(google-cloud-aiplatform\): pip install -e '\.\[vertex\]"):
    submit.main(["--config", MRPC, "--vertex", "--project", "p", "--region", "r"])
