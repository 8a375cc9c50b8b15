"""A gs:// output is held by one job at a time; a killed job's claim is broken after its lease.

Real processes race through the real google-cloud-storage client to a real
Cloud Storage server on loopback (gcp-storage-emulator, made to keep
Cloud Storage's generation preconditions: tests/gcs_emulator.py). Not run:
Google's service itself, and preprocess or score writing to gs:// end to end
(TensorFlow's gs:// file system cannot be pointed at the emulator): they take this
claim through bertline.fileio.output_claim before any work, with the message that
tests/reliability/test_concurrent_runs.py checks on local outputs.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from google.cloud import storage

from tests import gcs_emulator

OUT = "gs://models/runs/out"
LOCK = ".bertline-score.lock"
ROUNDS = 6

_RACER = textwrap.dedent("""
    import json, sys, time
    from bertline import fileio
    start, rounds = float(sys.argv[1]), int(sys.argv[2])
    for r in range(rounds):
      time.sleep(max(0.0, start + r - time.time()))  # both processes at the same instant
      try:
        with fileio.output_claim({out!r}, {lock!r}, "another job is writing to {out}"):
          print(json.dumps([r, "held"]), flush=True)
          time.sleep(0.5)
      except FileExistsError as e:
        print(json.dumps([r, str(e)]), flush=True)
    """).format(out=OUT, lock=LOCK)

_HOLDER = textwrap.dedent("""
    import sys, time
    from bertline import gcs_claim
    with gcs_claim.claim({out!r}, {lock!r}, "busy", lease_s=float(sys.argv[1])):
      print("held", flush=True)
      time.sleep(600)
    """).format(out=OUT, lock=LOCK)


@pytest.fixture(scope="module")
def emulator():
  with gcs_emulator.running() as url:
    yield url


def test_two_processes_racing_for_one_output_never_both_hold_it(emulator):
  start = time.time() + 4  # after both have imported the storage client
  procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(start), str(ROUNDS)],
                            env=gcs_emulator.environment(emulator), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  outcomes = {}
  for p in procs:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    for line in out.splitlines():
      r, what = json.loads(line)
      outcomes.setdefault(r, []).append(what)
  assert sorted(outcomes) == list(range(ROUNDS))
  for r, results in outcomes.items():
    assert len(results) == 2 and results.count("held") == 1, (r, results)
    (refused,) = [w for w in results if w != "held"]
    # The loser names who holds the output: the winner's process and host.
    assert refused.startswith(f"another job is writing to {OUT} (pid "), refused
  # Every holder released its claim as it finished.
  with pytest.MonkeyPatch.context() as env:
    env.setenv("STORAGE_EMULATOR_HOST", emulator)
    assert storage.Client(project="test").bucket("models").get_blob(f"runs/out/{LOCK}") is None


def test_a_killed_holders_claim_refuses_others_until_its_lease_runs_out(emulator):
  env = gcs_emulator.environment(emulator)
  holder = subprocess.Popen([sys.executable, "-c", _HOLDER, "4"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  assert holder.stdout.readline().strip() == "held"
  holder.send_signal(signal.SIGKILL)  # no release, no renewal: its claim stays behind
  holder.wait(timeout=30)
  killed_at = time.time()
  take = textwrap.dedent(f"""
      import logging
      from bertline import fileio
      logging.basicConfig(level=logging.WARNING, format="%(message)s")
      try:
        with fileio.output_claim({OUT!r}, {LOCK!r}, "busy"):
          print("held")
      except FileExistsError as e:
        print(e)
      """)

  def another():
    return subprocess.run([sys.executable, "-c", take], env=env, capture_output=True, text=True,
                          timeout=60)

  refused = another()
  assert refused.stdout.startswith(f"busy (pid {holder.pid} on "), refused
  assert time.time() - killed_at < 4, "too slow to see the lease unexpired"
  time.sleep(max(0.0, killed_at + 4.5 - time.time()))
  broken = another()
  assert broken.stdout.strip() == "held", broken
  assert f"Breaking the expired claim of pid {holder.pid} on " in broken.stderr
