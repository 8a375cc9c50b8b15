"""trainer/strategy.py: mirrored (2 logical CPUs) and multi-worker (2 processes on loopback) training
give the updates of one device with the same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from bertline.model.model_dir import ModelDir
from bertline.trainer import strategy
from tests.trainer import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _values(records, config_file, model_dir, strategy, **kw):
  values = dict(data_dir=records, model_dir=str(model_dir), model_config_file=config_file,
                vocab_file=helpers.VOCAB, batch_size=16, eval_batch_size=32, epochs=2,
                learning_rate=1e-3, max_steps=8, eval_every_steps=100, progress=False, seed=5,
                strategy=strategy, hidden_dropout=0.0, classifier_dropout=0.0)
  values.update(kw)
  return values


def _run(runs, logical_cpus=1, env=None):
  return subprocess.Popen(
      [sys.executable, "-m", "tests.trainer.distributed_worker", json.dumps(runs),
       str(logical_cpus)], cwd=ROOT, env={**os.environ, **(env or {})},
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc, timeout=300):
  out = proc.communicate(timeout=timeout)[0].decode(errors="replace")
  assert proc.returncode == 0, out[-3000:]
  return [json.loads(line[len("RESULT "):]) for line in out.splitlines()
          if line.startswith("RESULT ")]


def _weights(model_dir):
  return [v.numpy() for v in ModelDir(str(model_dir)).load_classifier("latest").weights]


def _assert_close(a, b):
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def one_device(lang_records, tmp_path_factory):
  root = tmp_path_factory.mktemp("dist")
  config = helpers.tiny_model_config(str(root / "config.json"))
  return root, config


def test_mirrored_on_two_logical_cpus_matches_one_device(lang_records, one_device):
  root, config = one_device
  results = _finish(_run([
      _values(lang_records, config, root / "one", "cpu"),
      _values(lang_records, config, root / "mirrored", "mirrored"),
      _values(lang_records, config, root / "mirrored-accum", "mirrored", grad_accum_steps=2),
  ], logical_cpus=2))
  assert [r["step"] for r in results] == [8, 8, 8]
  want = _weights(root / "one")
  _assert_close(_weights(root / "mirrored"), want)
  _assert_close(_weights(root / "mirrored-accum"), want)
  for r in results[1:]:
    np.testing.assert_allclose(r["metrics"]["eval_loss"], results[0]["metrics"]["eval_loss"],
                               rtol=1e-4)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_workers_on_localhost_match_one_worker(lang_records, one_device):
  root, config = one_device
  one = root / "one-worker"
  ref = _run([_values(lang_records, config, one, "cpu")])
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  procs = [_run([_values(lang_records, config, root / "two-workers", "multi-worker")], env={
      "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
      for i in range(2)]
  results = [_finish(p) for p in procs]
  _finish(ref)
  assert results[0][0]["step"] == results[1][0]["step"] == 8
  _assert_close(_weights(root / "two-workers"), _weights(one))


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),  # a lone trainer
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True),
])
def test_only_the_chief_of_a_job_claims_its_model_dir(monkeypatch, tf_config, chief):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
  assert strategy.is_chief_process() is chief
