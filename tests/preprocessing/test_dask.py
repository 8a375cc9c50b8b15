"""Preprocess on Beam's Dask runner, for real: a scheduler and two workers on 127.0.0.1.

The output — every record byte for byte by guid, the rejected rows and the
counts — must be the DirectRunner's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from bertline import corpora, resources, schema
from bertline.preprocessing import beam_job
from tests.records import read_split

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")
DASK = os.path.join(os.path.dirname(sys.executable), "dask")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  """Real tweets with bad rows among the good: an unknown label, too few columns, bad UTF-8."""
  data = str(tmp_path_factory.mktemp("tweets"))
  paths = corpora.write_tweets_tsv(data, limit=3000)
  for split, extra in (("train", b"sarcastic\tnot a label\nno-tab-here\n\xff\tbad label\n"),
                       ("dev", b"positive\n")):
    with open(paths[split], "rb") as f:
      lines = f.read().split(b"\n")
    lines[len(lines) // 2:len(lines) // 2] = extra.rstrip(b"\n").split(b"\n")  # mid-file
    with open(paths[split], "wb") as f:
      f.write(b"\n".join(lines))
  return data


def _preprocess(data, out, *runner_args):
  return beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(data, corpora.TWEETS_TASK_FILE),
                       "--data-dir", data, "--vocab-file", VOCAB, "--max-seq-length", "48",
                       "--output-dir", out, "--chunk-bytes", "40000", *runner_args]))


@pytest.fixture(scope="module")
def direct(corpus, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("direct") / "out")
  return out, _preprocess(corpus, out)


def _assert_same_output(a_dir, a, b_dir, b):
  assert a.labels == b.labels
  for split in a.splits:
    sa, sb = a.splits[split], b.splits[split]
    assert (sa.num_examples, sa.num_rejected, sa.num_invalid_utf8, sa.num_empty_text) == \
           (sb.num_examples, sb.num_rejected, sb.num_invalid_utf8, sb.num_empty_text), split
    ra, rb = read_split(a_dir, split), read_split(b_dir, split)
    assert len(ra) == sa.num_examples
    assert {g: r for g, (r, _) in ra.items()} == {g: r for g, (r, _) in rb.items()}, split
    with open(os.path.join(a_dir, sa.rejected_file), "rb") as fa, \
         open(os.path.join(b_dir, sb.rejected_file), "rb") as fb:
      assert fa.read() == fb.read(), split


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
  """`dask scheduler` and two `dask worker` processes on 127.0.0.1; stopped afterwards."""
  from dask.distributed import Client
  tmp_path = tmp_path_factory.mktemp("dask")
  scheduler_file = str(tmp_path / "scheduler.json")
  common = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
  log = open(tmp_path / "dask.log", "w")
  procs = [subprocess.Popen([DASK, "scheduler", "--scheduler-file", scheduler_file, "--port", "0",
                             *common], stdout=log, stderr=subprocess.STDOUT)]
  try:
    deadline = time.time() + 60
    while not os.path.exists(scheduler_file) and time.time() < deadline:
      time.sleep(0.2)
    for name in ("w1", "w2"):
      procs.append(subprocess.Popen(
          [DASK, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1", "--name", name,
           *common], stdout=log, stderr=subprocess.STDOUT))
    with Client(scheduler_file=scheduler_file, timeout=60) as client:
      client.wait_for_workers(2, timeout=120)
      # Everything it started listens on loopback only.
      for proc in procs:
        for c in psutil.Process(proc.pid).net_connections(kind="inet"):
          if c.status == psutil.CONN_LISTEN:
            assert c.laddr.ip in ("127.0.0.1", "::1"), (proc.args, c.laddr)
      yield client, scheduler_file
  finally:
    for proc in reversed(procs):
      proc.terminate()
    for proc in procs:
      try:
        proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
  assert all(proc.poll() is not None for proc in procs)


def test_dask_cluster_output_is_the_direct_runners(corpus, direct, cluster, tmp_path):
  client, scheduler_file = cluster
  address = client.scheduler_info()["address"]
  assert address.startswith("tcp://127.0.0.1:")
  out = str(tmp_path / "dask")
  metadata = _preprocess(corpus, out, "--runner", "DaskRunner", "--dask_client_address", address)
  assert metadata.splits["train"].num_rejected == 3 and metadata.splits["dev"].num_rejected == 1
  assert len(metadata.splits["train"].files) > 2  # several shards, spread over the workers
  _assert_same_output(direct[0], direct[1], out, metadata)
  # The work ran in the cluster's worker processes, both of them.
  # (A lambda: the workers cannot import this test module, so it travels by value.)
  built = client.run(lambda: len(getattr(sys.modules.get("bertline.preprocessing.beam_job"),
                                         "_TOKENIZERS", ())))
  assert sorted(built.values()) == [1, 1], built


@pytest.mark.slow  # ~16 s: a second local Dask cluster; the Direct-vs-Dask equality case above stays
def test_dask_without_an_address_runs_a_local_cluster_on_loopback(corpus, direct, tmp_path):
  out = str(tmp_path / "dask-local")
  metadata = _preprocess(corpus, out, "--runner", "DaskRunner")
  _assert_same_output(direct[0], direct[1], out, metadata)
  rejected = open(os.path.join(out, metadata.splits["train"].rejected_file), "rb").read()
  assert b"\tlabel 'sarcastic' is not in the task's labels" in rejected
  assert b"expected at least 2 tab-separated columns, found 1\tno-tab-here" in rejected
  assert schema.read_metadata(out) == metadata


def test_a_run_configs_beam_args_choose_the_dask_cluster(corpus, direct, cluster, tmp_path):
  from bertline.components import steps
  from bertline.pipeline import config as run_config
  client, _ = cluster
  address = client.scheduler_info()["address"]
  path = tmp_path / "run.yaml"
  path.write_text(f"""
data:
  path: {corpus}
  task_config: {os.path.join(corpus, corpora.TWEETS_TASK_FILE)}
  max_seq_length: 48
  chunk_bytes: 40000
  beam_args: ["--runner", "DaskRunner", "--dask_client_address", "{address}"]
model:
  vocab_file: {VOCAB}
""")
  d = run_config.load(str(path)).data
  out = str(tmp_path / "out")
  steps.preprocess(d.path, out, d.task, d.task_config, VOCAB, d.preprocess_settings())
  _assert_same_output(direct[0], direct[1], out, schema.read_metadata(out))
