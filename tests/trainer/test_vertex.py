"""Vertex AI's conventions: AIP_* paths and CLUSTER_SPEC, as a custom training job sets them."""

from __future__ import annotations

import json
import os

import pytest

from bertline import schema
from bertline.trainer import vertex
from bertline.trainer.config import TrainConfig
from tests.reliability.conftest import bertline
from tests.trainer import helpers

VERTEX_ENV = {"AIP_CHECKPOINT_DIR": "gs://b/job/checkpoints", "AIP_MODEL_DIR": "gs://b/job/model",
              "AIP_TENSORBOARD_LOG_DIR": "gs://b/tb/logs"}


def test_the_environment_fills_only_what_the_flags_left_empty():
  filled = vertex.apply(TrainConfig(export=True), VERTEX_ENV)
  assert (filled.model_dir, filled.tensorboard_dir, filled.export_dir) == (
      "gs://b/job/checkpoints", "gs://b/tb/logs", "gs://b/job/model")
  mine = vertex.apply(TrainConfig(model_dir="m", tensorboard_dir="t", export=True,
                                  export_dir="e"), VERTEX_ENV)
  assert (mine.model_dir, mine.tensorboard_dir, mine.export_dir) == ("m", "t", "e")
  assert vertex.apply(TrainConfig(), VERTEX_ENV).export_dir == ""  # exports only when asked
  assert vertex.apply(TrainConfig(), {}) == TrainConfig()


def test_cluster_spec_becomes_tf_config():
  spec = {"cluster": {"workerpool0": ["cmle-training-workerpool0-1-0:2222"],
                      "workerpool1": ["cmle-training-workerpool1-1-0:2222",
                                      "cmle-training-workerpool1-1-1:2222"]},
          "environment": "cloud", "task": {"type": "workerpool1", "index": 1}}
  tf_config = json.loads(vertex.tf_config_from_cluster_spec({"CLUSTER_SPEC": json.dumps(spec)}))
  assert tf_config == {"cluster": {"chief": spec["cluster"]["workerpool0"],
                                   "worker": spec["cluster"]["workerpool1"]},
                       "task": {"type": "worker", "index": 1}}
  assert vertex.tf_config_from_cluster_spec({"CLUSTER_SPEC": json.dumps(spec),
                                             "TF_CONFIG": "{}"}) is None  # Vertex's own wins
  with pytest.raises(ValueError, match="CLUSTER_SPEC is not Vertex AI's cluster spec"):
    vertex.tf_config_from_cluster_spec({"CLUSTER_SPEC": '{"cluster": {"pool9": ["h:1"]}}'})


@pytest.mark.slow  # ~18 s of CLI training; the AIP_* filling is unit-tested above, the gs:// export in
# tests/reliability/test_vertex_directories.py
def test_bertline_train_puts_checkpoints_events_and_export_where_vertex_looks(lang_records,
                                                                              tmp_path):
  config = helpers.tiny_model_config(str(tmp_path / "config.json"))
  env = {"AIP_CHECKPOINT_DIR": str(tmp_path / "aip" / "checkpoints"),
         "AIP_TENSORBOARD_LOG_DIR": str(tmp_path / "aip" / "tensorboard"),
         "AIP_MODEL_DIR": str(tmp_path / "aip" / "model")}
  result = bertline("train", "--data-dir", lang_records, "--model-config-file", config,
                    "--vocab-file", helpers.VOCAB, "--max-steps", "4", "--batch-size", "16",
                    "--eval-every-steps", "4", "--no-progress", "--export", env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  checkpoints = os.path.join(env["AIP_CHECKPOINT_DIR"], schema.CHECKPOINT_SUBDIR)
  assert any(name.startswith("ckpt-") for name in os.listdir(checkpoints))
  assert os.listdir(os.path.join(env["AIP_TENSORBOARD_LOG_DIR"], "train"))
  assert os.listdir(os.path.join(env["AIP_TENSORBOARD_LOG_DIR"], "eval"))
  (version,) = os.listdir(env["AIP_MODEL_DIR"])
  assert os.path.exists(os.path.join(env["AIP_MODEL_DIR"], version, "saved_model.pb"))
  assert f"exported {os.path.join(env['AIP_MODEL_DIR'], version)}" in result.stdout
  # Without a model_dir from either side, the fix is named.
  result = bertline("train", "--data-dir", lang_records, "--model-config-file", config,
                    "--vocab-file", helpers.VOCAB, "--export",
                    env={"AIP_CHECKPOINT_DIR": "", "AIP_MODEL_DIR": ""})
  assert result.returncode == 3
  assert "--model-dir are required (on Vertex AI, --model-dir defaults to $AIP_CHECKPOINT_DIR)" \
      in result.stderr
