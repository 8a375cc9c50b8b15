"""Push registers versions in the Vertex AI Model Registry: the real SDK against a loopback API.

The whole path runs for real but for Google's servers: `bertline push` with a
service account key file (its token endpoint on loopback), the model copied
to a real GCS server (gcp-storage-emulator), google-cloud-aiplatform's REST
transport sending its requests to `vertex_api.Server`, which checks them
against the API reference and answers as the service does (tests/exporter/vertex_api.py).
What is not run: Google's own service, and Vertex's prebuilt TensorFlow
container loading the pushed model.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bertline import cli, errors, schema
from bertline.evaluator import blessing as blessing_lib
from bertline.evaluator import evaluate
from bertline.evaluator.config import EvaluateConfig
from bertline.exporter import export, vertex_registry
from tests.exporter.vertex_api import Server

PROJECT, REGION = "bertline-test", "europe-west4"
PARENT = f"projects/{PROJECT}/locations/{REGION}/models/sentiment"


@pytest.fixture(scope="module")
def versions(tiny_model, tweets_data, tmp_path_factory):
  """Export 3 (evaluated and blessed), and copies 4 (not blessed) and 5 (blessed)."""
  root = tmp_path_factory.mktemp("vertex")
  model_dir = str(root / "model_dir")
  shutil.copytree(tiny_model["model_dir"], model_dir)
  evaluate.run(EvaluateConfig(model_dir, tweets_data["data"], "dev",
                              thresholds={"eval_accuracy": 0.0}))
  export_dir = root / "export"
  first = export.export_model(model_dir, str(export_dir), version=3)
  with open(os.path.join(model_dir, schema.METRICS_FILE)) as f:
    metrics = json.load(f)
  for version, blessed in (("4", False), ("5", True)):
    shutil.copytree(first, export_dir / version)
    decision = blessing_lib.decide(metrics, {"eval_accuracy": 0.0 if blessed else 0.999})
    assert decision["blessed"] is blessed
    blessing_lib.write(str(export_dir / version / schema.ASSETS_EXTRA), decision)
  return {"dir": export_dir, "metrics": metrics}


@pytest.fixture
def vertex(gcs, tmp_path, monkeypatch):
  with Server() as server:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS",
                       server.credentials_file(str(tmp_path / "key.json")))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    yield server


def _push(versions, version, server, *flags):
  return cli.main(["push", "--model", str(versions["dir"] / version), "--to",
                   "gs://models/sentiment", "--vertex-model", "sentiment", "--project", PROJECT,
                   "--region", REGION, "--vertex-endpoint", server.url, *flags])


def _uploads(server):
  return [r["body"] for r in server.registry.requests
          if r["method"] == "POST" and r["path"].split("?")[0].endswith("models:upload")]


def _generations(gcs, prefix):
  return {b.name: b.generation for b in gcs.list_blobs("models", prefix=prefix)}


def test_versions_line_up_under_one_model_with_metrics_and_blessing_as_labels(
    versions, vertex, gcs, capsys):
  registry = vertex.registry
  # 1. The first push creates the model (serving checked first, as always).
  assert _push(versions, "3", vertex) == 0
  out = capsys.readouterr().out
  assert f"registered in Vertex AI as {PARENT}@1" in out
  (upload,) = _uploads(vertex)
  assert upload["modelId"] == "sentiment" and "parentModel" not in upload
  model = upload["model"]
  assert model["artifactUri"] == "gs://models/sentiment/3"
  assert model["containerSpec"]["imageUri"] == (
      "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest")
  accuracy = versions["metrics"]["eval_accuracy"]
  assert model["labels"] == {
      "bertline_version": "3", "task": "tweets", "blessed": "true", "forced": "false",
      "serving_check": "passed", "eval_accuracy": f"{accuracy:.4f}".replace(".", "_"),
      "macro_f1": f"{versions['metrics']['macro_f1']:.4f}".replace(".", "_"),
      "eval_loss": f"{versions['metrics']['eval_loss']:.4f}".replace(".", "_")}
  assert sorted(model["versionAliases"]) == ["default", "v3"]
  assert f"eval_accuracy {accuracy:.6g}" in model["versionDescription"]
  # 2. A forced, unblessed version goes under the same parent and is not the default.
  assert _push(versions, "4", vertex, "--force", "--skip-serving-check") == 0
  upload = _uploads(vertex)[-1]
  assert upload["parentModel"] == PARENT and "modelId" not in upload
  assert upload["model"]["versionAliases"] == ["v4"]
  assert upload["model"]["labels"]["blessed"] == "false"
  assert upload["model"]["labels"]["forced"] == "true"
  assert upload["model"]["labels"]["serving_check"] == "skipped"
  assert registry.default_versions(PARENT) == ["1"]
  # 3. The registry fails once: the push is complete, the error says how to finish.
  registry.fail_uploads = 1
  assert _push(versions, "5", vertex, "--skip-serving-check") == errors.REMOTE
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert "gs://models/sentiment/5 was pushed, but registering it in the Vertex AI Model " \
         "Registry failed (InternalServerError: 500" in line
  assert "re-run `bertline push --model" in line and "(the copy is not repeated)" in line
  pushed = _generations(gcs, "sentiment/5/")
  assert f"sentiment/5/{schema.PUSH_COMPLETE_MARKER}" in pushed
  # ... and the same command again registers it, copying nothing.
  assert _push(versions, "5", vertex, "--skip-serving-check") == 0
  assert f"{PARENT}@3" in capsys.readouterr().out
  assert _generations(gcs, "sentiment/5/") == pushed
  assert registry.default_versions(PARENT) == ["3"]
  # 4. Once registered, a re-run finds version v5 and uploads nothing.
  count = len(_uploads(vertex))
  assert _push(versions, "5", vertex, "--skip-serving-check") == 0
  assert len(_uploads(vertex)) == count
  # Every request was authenticated with the key file; only the injected fault failed.
  assert registry.errors == ["the registry is having a bad day"]
  assert registry.self_signed or any(r["path"] == "/token" for r in registry.requests)


def test_a_different_model_in_a_pushed_version_is_never_registered_over_it(versions, vertex,
                                                                           gcs, capsys,
                                                                           tmp_path):
  """Only an identical pushed version is taken as done: other files are a clash, as always."""
  assert _push(versions, "3", vertex, "--skip-serving-check") == 0  # identical: accepted
  other = tmp_path / "3"
  shutil.copytree(versions["dir"] / "3", other)
  (other / "assets" / "notes.txt").write_text("another model")
  rc = cli.main(["push", "--model", str(other), "--to", "gs://models/sentiment", "--vertex-model",
                 "sentiment", "--project", PROJECT, "--region", REGION, "--vertex-endpoint",
                 vertex.url, "--skip-serving-check"])
  assert rc == errors.BAD_INPUT
  assert "was already pushed" in capsys.readouterr().err


@pytest.mark.parametrize("value,label", [(0.71604, "0_7160"), (True, "true"), ("Tweets.v2", "tweets_v2"),
                                         (float("nan"), "nan"), ("x" * 80, "x" * 63)])
def test_label_values_follow_vertexs_rules(value, label):
  assert vertex_registry.label_value(value) == label


def test_region_picks_the_prebuilt_images_repository():
  model = vertex_registry.VertexModel("m", "p", "asia-northeast1")
  assert model.image() == "asia-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
  assert vertex_registry.VertexModel("m", "p", "me-west1").image().startswith("us-docker.pkg.dev")
  assert vertex_registry.VertexModel("m", "p", "us-east1", serving_image="x/y:1").image() == "x/y:1"


def test_without_the_sdk_push_names_the_extra(versions, monkeypatch, tmp_path):
  # The SDK is installed for the tests: hide it as if absent (an entry of None in
  # sys.modules makes an import fail; the attribute would still satisfy `from ... import`).
  import sys

  import google.cloud
  monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)
  monkeypatch.delattr(google.cloud, "aiplatform", raising=False)
  with pytest.raises(ValueError, match=r"--vertex-model needs the Vertex AI SDK "
                     r"\(google-cloud-aiplatform\): pip install -e '\.\[vertex\]'"):
    from bertline.exporter import push
    push.push(str(versions["dir"] / "3"), "gs://models/x", force=True,
              vertex=vertex_registry.VertexModel("m", "p", "r"))
