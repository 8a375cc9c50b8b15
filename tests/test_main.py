"""bertline/__main__.py: `python -m bertline` is the `bertline` command."""

import subprocess
import sys


def test_python_dash_m_bertline_is_the_command():
  done = subprocess.run([sys.executable, "-m", "bertline", "--help"], capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert "preprocess" in done.stdout and "push" in done.stdout
  bad = subprocess.run([sys.executable, "-m", "bertline", "pusch"], capture_output=True,
                       text=True, timeout=120)
  assert bad.returncode == 2 and "push" in bad.stderr
