"""Vertex AI custom-job conventions, read from the environment once, at the CLI's edge.

A Vertex AI custom training job sets:
  AIP_CHECKPOINT_DIR       where the job should keep checkpoints: the model_dir
                           when --model-dir is not given (a restarted job resumes there);
  AIP_TENSORBOARD_LOG_DIR  where a Vertex TensorBoard instance reads events;
  AIP_MODEL_DIR            where the job's model goes: --export without --export-dir
                           exports the best model there as <AIP_MODEL_DIR>/<version>
                           (a gs:// one through push's upload: train._export);
  CLUSTER_SPEC             the worker pools, in Vertex's shape (custom containers get
                           this; TensorFlow's prebuilt ones TF_CONFIG too): made into
                           TF_CONFIG when that is absent (pool 0 the chief, pool 1 workers).
Explicit flags always win over the environment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Mapping, Optional

from bertline.trainer.config import TrainConfig

log = logging.getLogger("bertline.train")

CHECKPOINT_DIR = "AIP_CHECKPOINT_DIR"
TENSORBOARD_LOG_DIR = "AIP_TENSORBOARD_LOG_DIR"
MODEL_DIR = "AIP_MODEL_DIR"
CLUSTER_SPEC = "CLUSTER_SPEC"
# Vertex worker pools -> TF_CONFIG task types (https://cloud.google.com/vertex-ai/docs/training/distributed-training).
POOL_TYPES = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps",
              "workerpool3": "evaluator"}


def apply(config: TrainConfig, environ: Mapping[str, str] = os.environ) -> TrainConfig:
  """`config` with the paths Vertex AI gives filled in where the flags left them empty."""
  changes = {}
  if not config.model_dir and environ.get(CHECKPOINT_DIR):
    changes["model_dir"] = environ[CHECKPOINT_DIR]
  if not config.tensorboard_dir and environ.get(TENSORBOARD_LOG_DIR):
    changes["tensorboard_dir"] = environ[TENSORBOARD_LOG_DIR]
  if config.export and not config.export_dir and environ.get(MODEL_DIR):
    changes["export_dir"] = environ[MODEL_DIR]
  for key, value in changes.items():
    log.info("Vertex AI: %s = %s (from the job's environment)", key, value)
  return dataclasses.replace(config, **changes) if changes else config


def tf_config_from_cluster_spec(environ: Mapping[str, str] = os.environ) -> Optional[str]:
  """TF_CONFIG (JSON) for Vertex's CLUSTER_SPEC, or None when TF_CONFIG is set or there is none."""
  if environ.get("TF_CONFIG") or not environ.get(CLUSTER_SPEC):
    return None
  try:
    spec = json.loads(environ[CLUSTER_SPEC])
    cluster = {POOL_TYPES[pool]: list(hosts) for pool, hosts in spec["cluster"].items() if hosts}
    task = {"type": POOL_TYPES[spec["task"]["type"]], "index": int(spec["task"]["index"])}
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{CLUSTER_SPEC} is not Vertex AI's cluster spec ({e!r}): "
                     f"{environ[CLUSTER_SPEC][:200]!r}") from None
  return json.dumps({"cluster": cluster, "task": task})
