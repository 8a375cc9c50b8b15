"""bertline/fileio.py: atomic writes leave the old file or the new one, never a part; strict JSON;
an output claim held by one process refuses a second, and is freed when its owner dies."""

import hashlib
import json
import math
import os
import subprocess
import sys
import time

import pytest

from bertline import fileio


def test_atomic_writes_replace_whole_files_and_leave_no_temporaries(tmp_path):
  path = str(tmp_path / "deep" / "er" / "metrics.json")
  fileio.write_json_atomic(path, {"b": 1.5, "a": [float("nan"), math.inf, 2]})
  text = open(path).read()
  assert text.endswith("\n") and json.loads(text) == {"a": [None, None, 2], "b": 1.5}
  assert text.index('"a"') < text.index('"b"')  # keys sorted: the same data, the same bytes
  fileio.write_text_atomic(path, "second\n")
  assert fileio.read_text(path) == "second\n"
  assert os.listdir(os.path.dirname(path)) == ["metrics.json"]
  assert fileio.sha256_file(path) == hashlib.sha256(b"second\n").hexdigest()


def test_a_claim_refuses_a_second_process_and_dies_with_its_owner(tmp_path):
  out = str(tmp_path / "out")
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time\nfrom bertline import fileio\n"
       f"with fileio.output_claim({out!r}, '.lock', 'busy'):\n"
       "  print('held', flush=True)\n  time.sleep(60)\n"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FileExistsError, match=rf"^another run writes here \(pid {holder.pid} on "):
      with fileio.output_claim(out, ".lock", "another run writes here"):
        pass
  finally:
    holder.kill()
    holder.wait()
  deadline = time.time() + 10
  while True:  # the kernel drops a dead owner's lock: no stale claim
    try:
      with fileio.output_claim(out, ".lock", "busy"):
        break
    except FileExistsError:
      assert time.time() < deadline
      time.sleep(0.05)


def test_a_failed_atomic_write_leaves_the_target_and_no_temporary(tmp_path):
  (tmp_path / "taken").mkdir()  # a directory where the file should go: the rename fails
  with pytest.raises(OSError):
    fileio.write_text_atomic(str(tmp_path / "taken"), "data")
  assert sorted(os.listdir(tmp_path)) == ["taken"] and os.listdir(tmp_path / "taken") == []
