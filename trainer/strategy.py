"""The one place that picks the tf.distribute strategy.

  auto          MultiWorkerMirroredStrategy when TF_CONFIG names several workers
                (as Vertex AI and Kubeflow's TFJob set it), else MirroredStrategy
                over the GPUs when there are several, else the one device.
  cpu / gpu     one device (the first GPU for "gpu").
  mirrored      MirroredStrategy over every local GPU (or the logical CPUs).
  tpu           TPUStrategy via TPUClusterResolver(tpu, zone, project).
  multi-worker  MultiWorkerMirroredStrategy from TF_CONFIG.

Nothing else in bertline branches on the kind of hardware: the training loop
asks the returned `StrategyInfo` whether batches may change shape (TPUs want
static shapes) and whether this process writes the model_dir (the chief).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Optional

import tensorflow as tf

from bertline.trainer.config import STRATEGIES

log = logging.getLogger("bertline.train")


@dataclasses.dataclass
class StrategyInfo:
  """A strategy and what the training loop needs to know about it.

  Attributes:
    strategy: tf.distribute.Strategy.
    name: str. The resolved choice (never "auto").
    is_chief: bool. Whether this process writes the model_dir.
    worker_index: int. This worker's index (0 when there is one worker).
    num_workers: int.
    static_shapes: bool. Whether batches must keep one shape (TPU).
  """

  strategy: tf.distribute.Strategy
  name: str
  is_chief: bool = True
  worker_index: int = 0
  num_workers: int = 1
  static_shapes: bool = False


def _tf_config() -> dict:
  raw = os.environ.get("TF_CONFIG", "")
  if not raw:
    return {}
  try:
    return json.loads(raw)
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {raw[:200]!r}") from e


def _task(tf_config: dict):
  """(task type, index, whether it is the chief: the process that writes the model_dir)."""
  task = tf_config.get("task", {})
  task_type, index = task.get("type", "worker"), int(task.get("index", 0))
  has_chief = bool(tf_config.get("cluster", {}).get("chief"))
  return task_type, index, task_type == "chief" or (
      task_type == "worker" and index == 0 and not has_chief)


def is_chief_process() -> bool:
  """Whether this process writes the model_dir: a lone trainer, or the chief of TF_CONFIG's
  cluster (the other workers of the same job write under _workers/)."""
  tf_config = _tf_config()
  return _num_workers(tf_config) < 1 or _task(tf_config)[2]


def _num_workers(tf_config: dict) -> int:
  cluster = tf_config.get("cluster", {})
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def create_strategy(name: str = "auto", tpu: Optional[str] = None,
                    tpu_zone: Optional[str] = None, gcp_project: Optional[str] = None
                    ) -> StrategyInfo:
  """Builds the strategy `name` (one of STRATEGIES); see the module docstring."""
  if name not in STRATEGIES:
    raise ValueError(f"--strategy {name!r} is not one of {', '.join(STRATEGIES)}.")
  tf_config = _tf_config()
  if name == "auto":
    if tpu:
      name = "tpu"
    elif _num_workers(tf_config) > 1:
      name = "multi-worker"
    elif len(tf.config.list_logical_devices("GPU")) > 1:
      name = "mirrored"
    elif tf.config.list_logical_devices("GPU"):
      name = "gpu"
    else:
      name = "cpu"

  if name == "cpu":
    return StrategyInfo(tf.distribute.OneDeviceStrategy("/cpu:0"), name)
  if name == "gpu":
    if not tf.config.list_logical_devices("GPU"):
      raise ValueError("--strategy gpu: TensorFlow sees no GPU here. Check the CUDA drivers "
                       "(nvidia-smi) or use --strategy cpu.")
    return StrategyInfo(tf.distribute.OneDeviceStrategy("/gpu:0"), name)
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return StrategyInfo(tf.distribute.MirroredStrategy(devices), name)
  if name == "tpu":
    if not tpu:
      raise ValueError("--strategy tpu needs --tpu NAME (the Cloud TPU's name, or 'local' on a "
                       "TPU VM), with --tpu-zone and --project unless they can be inferred.")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu, zone=tpu_zone, project=gcp_project)
    if tpu != "local":
      tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return StrategyInfo(tf.distribute.TPUStrategy(resolver), name, static_shapes=True)
  # multi-worker
  if _num_workers(tf_config) < 1:
    raise ValueError("--strategy multi-worker needs TF_CONFIG describing the cluster, e.g. "
                     '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                     '"task": {"type": "worker", "index": 0}}.')
  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  task_type, index, is_chief = _task(tf_config)
  log.info("Multi-worker: %s %d of %d (chief: %s)", task_type, index,
           _num_workers(tf_config), is_chief)
  return StrategyInfo(strategy, name, is_chief=is_chief, worker_index=index,
                      num_workers=_num_workers(tf_config))


def use_logical_cpus(n: int) -> None:
  """Splits the CPU into `n` logical devices (tests of mirrored training on CPU).

  Must run before TensorFlow initialises its devices.
  """
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
