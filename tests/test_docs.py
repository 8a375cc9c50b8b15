"""README.md and docs/: every command and flag they name is the CLI's, and the quickstart runs.

A doc that names a flag the command does not have (or no longer has) fails
here, not in a user's shell. The quickstart in README.md is executed as
written, on the packaged real tweets and MiniLM, with fewer training steps.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from bertline import beam_runner, cli
from bertline.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Commands whose other flags go to Apache Beam, which must declare them.
BEAM_COMMANDS = ("preprocess", "score")
# `bertline <command>` and what follows it on the line (a trailing "\" continues it).
COMMAND = re.compile(r"bertline ([a-z][a-z-]*)((?:[^`|\n]|\\\n)*)")


def _parser(command: str):
  if command in cli.FLAGS_MODULES:
    module, make = cli.FLAGS_MODULES[command]
    return getattr(__import__(module, fromlist=[make]), make)()
  return __import__(cli.COMMANDS[command][0], fromlist=["build_parser"]).build_parser()


def _named_flags():
  for doc in DOCS:
    text = doc.read_text()
    for match in COMMAND.finditer(text):
      command, rest = match.group(1), match.group(2)
      if command not in cli.COMMANDS:
        continue
      line = text.count("\n", 0, match.start()) + 1
      for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", rest):
        yield doc.relative_to(ROOT).as_posix(), line, command, flag


def _beam_declares(flag: str) -> bool:
  """Whether Beam reads `flag` (the Dask runner's own options only with --runner DaskRunner)."""
  for runner in ([], ["--runner", "DaskRunner"]):
    try:
      beam_runner.check_args([*runner, flag, "x"])
      return True
    except UsageError:
      pass
  return False


def test_every_flag_a_doc_names_is_its_commands():
  named = list(_named_flags())
  assert len(named) > 50  # the scan finds the docs' commands
  wrong = []
  for doc, line, command, flag in named:
    if flag in _parser(command).flag_names() or flag in ("--help",):
      continue
    if command in BEAM_COMMANDS and _beam_declares(flag):
      continue
    wrong.append(f"{doc}:{line}: bertline {command} {flag}")
  assert not wrong, "flags the commands do not have:\n" + "\n".join(wrong)


def test_every_command_has_a_row_in_the_readmes_table():
  table = [line for line in (ROOT / "README.md").read_text().splitlines()
           if line.startswith("| `bertline ")]
  named = {name for line in table for name in re.findall(r"bertline ([a-z-]+)|/ ([a-z-]+)", line)
           for name in name if name}
  assert set(cli.COMMANDS) <= named, sorted(set(cli.COMMANDS) - named)


def _quickstart() -> str:
  readme = (ROOT / "README.md").read_text()
  section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
  (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
  return block


def test_the_quickstart_runs_as_written(tmp_path):
  script = _quickstart()
  # Shorter, on this machine's 2 cores: fewer rows and steps; everything else as written.
  script = script.replace("--rows 2000", "--rows 300").replace("--max-steps 100", "--max-steps 3")
  script = script.replace("--threshold eval_accuracy=0.5", "--threshold eval_accuracy=0.0")
  venv = pathlib.Path(sys.executable).parent.parent
  os.symlink(venv, tmp_path / ".venv")
  result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
  assert "Prediction(label=" in result.stdout and "blessing: BLESSED" in result.stdout
  pushed = [p for p in (tmp_path / "registry" / "tweets").iterdir() if p.name.isdigit()]
  assert len(pushed) == 1 and (pushed[0] / "saved_model.pb").exists()


def _anchors(path: pathlib.Path) -> set:
  text = path.read_text()
  ids = set(re.findall(r'<a id="([^"]+)"', text))
  headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
              for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
  return ids | headings


def test_every_relative_link_and_anchor_resolves():
  broken = []
  for doc in DOCS:
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", doc.read_text(), flags=re.S))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
      if "://" in target or target.startswith("mailto:"):
        continue
      file, _, anchor = target.partition("#")
      path = (doc.parent / file).resolve() if file else doc
      if not path.exists():
        broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
      elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
        broken.append(f"{doc.relative_to(ROOT)}: {target} (no such anchor)")
  assert not broken, "\n".join(broken)
