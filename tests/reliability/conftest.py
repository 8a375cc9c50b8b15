"""tests/reliability: bertline's promises, each tested by making the fault happen for real.

Real concurrent processes, real truncated files, real full and read-only file
systems (tmpfs mounts, where this machine lets the test mount one). Read the
test names as the list of what bertline guarantees.
"""

import contextlib
import io
import os
import subprocess
import sys

import pytest

from bertline import cli

from tests.conftest import exported, tiny_model, tweets_data  # noqa: F401  (fixtures)


def bertline(*args, timeout=300, env=None):
  """Runs the real CLI in a fresh process; returns the CompletedProcess."""
  merged = dict(os.environ, NO_GCE_CHECK="True", PYTHONUNBUFFERED="1")
  merged.update(env or {})
  env = {k: v for k, v in merged.items() if v != ""}  # "" in `env`: unset that variable
  return subprocess.run([sys.executable, "-m", "bertline", *args], capture_output=True,
                        text=True, timeout=timeout, env=env)


def bertline_here(*args):
  """The real CLI's main() in this process, for faults refused before any work: the same code
  path as the executable's without a new interpreter loading TensorFlow again."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
      code = e.code
  return subprocess.CompletedProcess(["bertline", *args], code, out.getvalue(), err.getvalue())


def last_line(result) -> str:
  return result.stderr.strip().splitlines()[-1]


def _tmpfs(path, options: str, what: str):
  """Mounts a real tmpfs at `path` (skips where this machine does not allow it)."""
  path.mkdir()
  mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True, text=True)
  if mount.returncode != 0:
    pytest.skip(f"this machine does not let the test mount a tmpfs ({mount.stderr.strip()}): "
                f"{what} cannot be made here")
  return path


@pytest.fixture
def small_fs(tmp_path):
  """A real 1 MiB tmpfs (ENOSPC once full); yields its path and unmounts it."""
  yield _tmpfs(tmp_path / "small_fs", "size=1m", "a full file system")
  subprocess.run(["umount", "-l", str(tmp_path / "small_fs")], check=False)


@pytest.fixture
def read_only_fs(tmp_path):
  """A real read-only tmpfs (EROFS); yields its path and unmounts it."""
  yield _tmpfs(tmp_path / "ro_fs", "ro,size=1m", "a read-only file system")
  subprocess.run(["umount", "-l", str(tmp_path / "ro_fs")], check=False)
