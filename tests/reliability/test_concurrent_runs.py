"""Two `bertline run` on one work dir: the second is refused before any step, never a second
push of one model."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from bertline.pipeline import config as config_lib
from bertline.pipeline import local_run

CONFIG = {"data": {"builtin": "tweets", "limit": 200, "max_seq_length": 32},
          "model": {"init_checkpoint": "builtin:minilm"},
          "train": {"max_steps": 400}}


def test_a_second_run_of_one_work_dir_is_refused_while_the_first_runs(tmp_path):
  path, work = tmp_path / "run.yaml", tmp_path / "work"
  path.write_text(yaml.safe_dump(dict(CONFIG, push={"to": str(tmp_path / "registry")})))
  first = subprocess.Popen([sys.executable, "-m", "bertline", "run", "--config", str(path),
                            "--work-dir", str(work)], env=dict(os.environ, NO_GCE_CHECK="True"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 120
    while not (work / local_run.RUN_LOCK).exists():
      assert first.poll() is None and time.time() < deadline, first.stderr.read()
      time.sleep(0.1)
    with pytest.raises(FileExistsError, match=rf"another `bertline run` is running in work dir "
                       rf"{work}; wait for it, or give another --work-dir \(pid {first.pid} "):
      local_run.run(config_lib.load(str(path)), work_dir=str(work))
    assert first.poll() is None
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
  assert not (tmp_path / "registry").exists()  # nothing pushed by either
