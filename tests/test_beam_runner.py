"""How bertline picks the local runner's workers (bertline/beam_runner.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import DirectOptions

from bertline import beam_runner, errors


def _direct(options):
  d = options.view_as(DirectOptions)
  return d.direct_num_workers, d.direct_running_mode


def test_local_jobs_get_a_worker_per_core_but_no_more_than_their_work():
  cores = os.cpu_count() or 1
  assert _direct(beam_runner.pipeline_options([], local_mode="multi_threading")) == (
      cores, "multi_threading" if cores > 1 else "in_memory")
  # One shard: one worker, in Beam's in-memory mode (no gRPC channels to start).
  assert _direct(beam_runner.pipeline_options([], local_work_units=1)) == (1, "in_memory")
  # The user's flags win.
  assert _direct(beam_runner.pipeline_options(
      ["--direct_num_workers", "3", "--direct_running_mode", "multi_processing"],
      local_mode="multi_threading", local_work_units=1)) == (3, "multi_processing")


@pytest.mark.parametrize("args, kwargs, here", [
    ([], {"local_work_units": 1}, True),
    ([], {"local_mode": "multi_threading"}, True),
    ([], {"local_mode": "multi_processing"}, (os.cpu_count() or 1) == 1),
    (["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"], {}, False),
    (["--runner", "DaskRunner"], {}, False),
    (["--runner", "DataflowRunner"], {}, False),
])
def test_runs_in_this_process(args, kwargs, here):
  """Only in-memory and threaded local runs call the DoFns in the driver's own process."""
  assert beam_runner.runs_in_this_process(beam_runner.pipeline_options(args, **kwargs)) is here


@pytest.mark.parametrize("last_line, kind, text", [
    ("RuntimeError: OSError: [Errno 28] No space left on device: '/out/x' [while running 'W']",
     OSError, "[Errno 28] No space left on device (in Beam step W): '/out/x'"),
    ("RuntimeError: tensorflow.python.framework.errors_impl.ResourceExhaustedError: "
     "/out/s.tfrecord.tmp-1; No space left on device [while running 'EncodeShard']",
     OSError, "[Errno 28] No space left on device (in Beam step EncodeShard): "
     "'/out/s.tfrecord.tmp-1'"),
    ("RuntimeError: ValueError: --input x: bad [while running 'Read']", ValueError,
     "--input x: bad (in Beam step Read)"),
])
def test_a_workers_error_is_its_own_type_again(last_line, kind, text):
  error = beam_runner.worker_error(RuntimeError("Traceback (most recent call last):\n  ...\n"
                                                + last_line + "\n\n"))
  assert type(error) is kind and str(error) == text
  code, _ = errors.describe(error)
  assert code == (errors.STORAGE if kind is OSError else errors.BAD_INPUT)
  unknown = RuntimeError("Traceback ...\nKeyError: 'x' [while running 'W']")
  assert beam_runner.worker_error(unknown) is unknown  # a bug stays a bug, traceback and all


_WORKERS_SCRIPT = """
import logging, subprocess, sys
from bertline import beam_runner
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", force=True)
try:
  with beam_runner._worker_processes_output():
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('a worker traceback\\\\n')"])
    logging.getLogger("bertline").info("the driver's own log")
    print("the driver's own line", file=sys.stderr)
    if sys.argv[1] == "fail":
      raise SystemExit(5)
finally:
  print("after the job", file=sys.stderr)
"""


@pytest.mark.parametrize("outcome", ["success", "fail"])
def test_local_worker_processes_print_to_a_log_file_named_only_when_the_job_fails(outcome):
  """The workers inherit descriptor 2; the driver's own writes still reach the real stderr."""
  result = subprocess.run([sys.executable, "-c", _WORKERS_SCRIPT, outcome], capture_output=True,
                          text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
  lines = result.stderr.splitlines()
  assert "a worker traceback" not in result.stderr, result.stderr
  assert "INFO the driver's own log" in lines and "the driver's own line" in lines
  assert lines[-1] == "after the job"  # descriptor 2 is the real stderr again
  named = re.findall(r"The local Beam workers' own output: (\S+)$", result.stderr, re.M)
  if outcome == "success":
    assert result.returncode == 0 and named == []
  else:
    assert result.returncode == 5 and len(named) == 1
    with open(named[0]) as f:
      assert f.read() == "a worker traceback\n"
    os.remove(named[0])
