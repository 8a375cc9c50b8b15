"""pipeline/pipeline.py: the kfp pipeline compiled from the one definition — the image and
resources on every task, the blessed condition, retries and caching, and the optional distill
and score steps."""

import pytest
import yaml

from bertline.pipeline import config as config_lib
from tests.pipeline.helpers import CHECKED_IN, compile_yaml


@pytest.fixture(scope="module")
def spec():
  with open(CHECKED_IN) as f:
    return yaml.safe_load(f)


def _executor(spec, task):
  dag = spec["root"]["dag"]["tasks"]
  comp = (dag[task] if task in dag else
          spec["components"]["comp-condition-1"]["dag"]["tasks"][task])["componentRef"]["name"]
  return spec["deploymentSpec"]["executors"][spec["components"][comp]["executorLabel"]]["container"]


def test_every_task_runs_the_image_with_resources(spec):
  for task in ("resolve-data", "preprocess", "train", "evaluate", "export-push"):
    container = _executor(spec, task)
    assert container["image"] == config_lib.DEFAULT_IMAGE
    assert container["resources"]["resourceCpuRequest"] and container["resources"]["resourceMemoryLimit"]
  train = _executor(spec, "train")["resources"]
  assert train["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
  assert train["accelerator"]["resourceCount"] == "1"
  assert train["resourceMemoryRequest"] == "32G"


def test_export_push_runs_only_when_blessed(spec):
  dag = spec["root"]["dag"]["tasks"]
  assert "export-push" not in dag
  condition = dag["condition-1"]["triggerPolicy"]["condition"]
  assert condition == "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
  inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
  assert list(inner) == ["export-push"]
  outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]
  assert outputs["parameters"]["Output"]["parameterType"] == "BOOLEAN"
  assert outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
  assert (outputs["artifacts"]["confusion"]["artifactType"]["schemaTitle"]
          == "system.ClassificationMetrics")


def test_retries_and_caching(spec):
  dag = spec["root"]["dag"]["tasks"]
  assert dag["train"]["retryPolicy"]["maxRetryCount"] == 3
  assert dag["preprocess"]["cachingOptions"] == {"enableCache": True}
  # The data resolver is never cached, and its data fingerprint feeds preprocess's cache key.
  assert dag["resolve-data"]["cachingOptions"] == {}
  fingerprint = dag["preprocess"]["inputs"]["parameters"]["fingerprint"]
  assert fingerprint["taskOutputParameter"] == {"outputParameterKey": "fingerprint",
                                                "producerTask": "resolve-data"}
  baseline = dag["evaluate"]["inputs"]["parameters"]["baseline_model"]
  assert baseline["taskOutputParameter"]["producerTask"] == "resolve-data"


def test_config_sets_image_tpu_and_caching(tmp_path):
  config = config_lib.defaults([
      "pipeline.image=us-docker.pkg.dev/p/bertline/bertline:9", "pipeline.caching=false",
      "pipeline.train.accelerator_type=TPU_V3", "pipeline.train.accelerator_count=8",
      "pipeline.train.retries=0", "train.strategy=tpu", "train.max_steps=7"])
  spec = yaml.safe_load(compile_yaml(tmp_path, config))
  train = _executor(spec, "train")
  assert train["image"] == "us-docker.pkg.dev/p/bertline/bertline:9"
  assert train["resources"]["accelerator"]["resourceType"] == "TPU_V3"
  assert train["resources"]["accelerator"]["resourceCount"] == "8"
  dag = spec["root"]["dag"]["tasks"]
  assert "retryPolicy" not in dag["train"]
  assert dag["preprocess"]["cachingOptions"] == {}
  defaults = spec["root"]["inputDefinitions"]["parameters"]
  assert defaults["train_settings"]["defaultValue"] == {"max_steps": 7, "strategy": "tpu"}


def test_a_score_section_scores_after_push_or_with_the_model_in_production(tmp_path):
  config = config_lib.defaults([
      "score.input=gs://b/new/{date}/*.jsonl", "score.output=gs://b/scores/{date}",
      "score.format=jsonl", "score.id=key", "score.beam_args=[--runner, DataflowRunner]"])
  spec = yaml.safe_load(compile_yaml(tmp_path, config))
  components = spec["components"]
  branches = {name: comp["dag"]["tasks"] for name, comp in components.items()
              if name.startswith("comp-condition-")}
  blessed = [tasks for tasks in branches.values() if "export-push" in tasks]
  (scored_after_push,) = [tasks["score"] for tasks in blessed]
  assert scored_after_push["dependentTasks"] == ["export-push"]
  assert scored_after_push["cachingOptions"] == {}
  others = [tasks for tasks in branches.values()
            if "export-push" not in tasks and any(t.startswith("score") for t in tasks)]
  assert len(others) == 1  # dsl.Else: not blessed, the production model scores
  (else_task,) = others[0].values()
  assert "dependentTasks" not in else_task and else_task["taskInfo"]["name"] == "score"
  params = scored_after_push["inputs"]["parameters"]
  # The score section travels as one dict, ScoreConfig's keys, checked by it on the worker.
  settings = params["score_settings"]["runtimeValue"]["constant"]
  assert settings["input"] == ["gs://b/new/{date}/*.jsonl"] and settings["id"] == "key"
  assert params["date"]["componentInputParameter"] == "pipelinechannel--resolve-data-date"
  # Without a score section the pipeline has no score task (pipeline.yaml is unchanged).
  assert "comp-score" not in yaml.safe_load(open(CHECKED_IN))["components"]


def test_a_bad_score_section_names_the_key(tmp_path):
  def load(*overrides):
    return config_lib.from_dict({"data": {"builtin": "tweets"}}, overrides=list(overrides))
  assert load("score.input=x.jsonl", "score.format=jsonl", "score.id=key").score.id == "key"
  with pytest.raises(config_lib.ConfigError, match=r"score.format: 'csv' is not one of 'text', 'tsv', 'jsonl'"):
    load("score.input=x.csv", "score.format=csv")
  with pytest.raises(config_lib.ConfigError,
                     match=r"score.format text reads the whole line as text_a: score.text_a"):
    load("score.input=x.txt", "score.text_b=b")


def test_a_distill_section_adds_a_student_that_is_evaluated_and_pushed(tmp_path):
  config = config_lib.defaults(["distill={student_layers: 3}", "export.quantize=int8"])
  spec = yaml.safe_load(compile_yaml(tmp_path, config))
  dag = spec["root"]["dag"]["tasks"]
  assert dag["distill"]["dependentTasks"] == ["preprocess", "resolve-data", "train"]
  model_input = dag["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
  assert model_input["producerTask"] == "distill"
  defaults = spec["root"]["inputDefinitions"]["parameters"]
  assert defaults["distill_settings"]["defaultValue"]["student_layers"] == 3
  assert defaults["export_settings"]["defaultValue"]["quantize"] == "int8"
  (branch,) = [c["dag"]["tasks"] for n, c in spec["components"].items()
               if n.startswith("comp-condition-") and "export-push" in c["dag"]["tasks"]]
  push_inputs = branch["export-push"]["inputs"]
  assert push_inputs["artifacts"]["model"]["componentInputArtifact"].startswith(
      "pipelinechannel--distill-model")
  assert push_inputs["parameters"]["export_settings"]["componentInputParameter"] == (
      "pipelinechannel--export_settings")
  # Without a distill section there is no distill task (pipeline.yaml has none).
  assert "comp-distill" not in yaml.safe_load(open(CHECKED_IN))["components"]
