"""README.md and docs/: every command and flag they name is the CLI's, and their runnable blocks run.

A doc that names a flag the command does not have (or no longer has) fails
here, not in a user's shell. Every block marked `<!-- runnable: NAME -->` is
executed as written — the README's quickstart and Python API on the packaged
real tweets and MiniLM with fewer rows and steps, run_classifier's command on
a Google-layout checkpoint and MRPC-layout files — and a block marked
runnable that no runner here executes fails the suite.
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
from tests.preprocessing.test_processors import _glue_fixture
from tests.trainer import fixtures

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


# A fenced block under `<!-- runnable: NAME -->` is executed by RUNNERS[NAME] below.
RUNNABLE = re.compile(r"<!-- runnable: ([a-z-]+) -->\n```(?:bash|python)\n(.*?)```", re.S)


def _runnable() -> dict:
  blocks = {}
  for doc in DOCS:
    for name, code in RUNNABLE.findall(doc.read_text()):
      assert name not in blocks, f"two blocks are marked runnable: {name}"
      blocks[name] = code
  return blocks


def _bash(script: str, cwd: pathlib.Path, env: dict = None) -> subprocess.CompletedProcess:
  venv = pathlib.Path(sys.executable).parent.parent
  if not (cwd / ".venv").exists():
    os.symlink(venv, cwd / ".venv")
  path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
  result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PATH": path, **(env or {})})
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
  return result


def _run_quickstart_and_the_python_api(blocks, tmp_path, monkeypatch):
  # Shorter, on this machine's 2 cores: fewer rows and steps; everything else as written.
  script = blocks["quickstart"].replace("--rows 2000", "--rows 300")
  script = script.replace("--max-steps 100", "--max-steps 3")
  script = script.replace("--threshold eval_accuracy=0.5", "--threshold eval_accuracy=0.0")
  result = _bash(script, tmp_path)
  assert "Prediction(label=" in result.stdout and "blessing: BLESSED" in result.stdout
  pushed = [p for p in (tmp_path / "registry" / "tweets").iterdir() if p.name.isdigit()]
  assert len(pushed) == 1 and (pushed[0] / "saved_model.pb").exists()
  # README's Python block, in the same folder (it reads the quickstart's my_task.yaml and data),
  # in this process: TensorFlow and Beam are loaded already.
  code = blocks["python-api"].replace("max_steps=100", "max_steps=3")
  code = code.replace('"work/', '"api/').replace('"registry/tweets"', '"api/registry"')
  code = code.replace("model([\"what a great day\"])[0].label",
                      "answer = model([\"what a great day\"])[0].label")
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(compile(code, "README.md (Python)", "exec"), namespace)  # noqa: S102  the doc, as written
  assert namespace["answer"] in ("negative", "neutral", "positive")
  # docs/python.md's block, on what the README's block made.
  namespace = {}
  exec(compile(blocks["python-reference"], "docs/python.md", "exec"), namespace)  # noqa: S102
  assert namespace["summary"]["scored"] == 2
  first = (tmp_path / "api" / "test_results.tsv").read_text().splitlines()[0].split("\t")
  assert len(first) == 4 and first[-1] in ("negative", "neutral", "positive")


def _run_run_classifier(blocks, tmp_path, monkeypatch):
  _glue_fixture("mrpc", str(tmp_path / "glue" / "MRPC"))
  bert = fixtures.write_google_minilm(str(tmp_path / "uncased_L-6_H-384_A-12"))
  out = tmp_path / "mrpc_output"
  _bash(blocks["run-classifier"].replace("/tmp/mrpc_output/", f"{out}/"), tmp_path,
        env={"BERT_BASE_DIR": bert, "GLUE_DIR": str(tmp_path / "glue")})
  results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text().splitlines())
  assert sorted(results) == ["eval_accuracy", "eval_loss", "global_step", "loss"]
  assert int(results["global_step"]) == int(12 / 32 * 3.0)  # run_classifier's step count
  assert (out / "train.tf_record").exists() and (out / "eval.tf_record").exists()


RUNNERS = {"quickstart": _run_quickstart_and_the_python_api,
           "python-api": None,  # run by the quickstart's runner, in its folder
           "python-reference": None,  # docs/python.md: after python-api, on what it made
           "run-classifier": _run_run_classifier}


def test_every_block_marked_runnable_has_its_runner():
  assert set(_runnable()) == set(RUNNERS)


@pytest.mark.parametrize("name", [n for n, run in RUNNERS.items() if run])
def test_the_runnable_blocks_run_as_written(name, tmp_path, monkeypatch):
  RUNNERS[name](_runnable(), tmp_path, monkeypatch)


def _anchors(path: pathlib.Path) -> set:
  text = path.read_text()
  ids = set(re.findall(r'<a id="([^"]+)"', text))
  headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
              for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
  return ids | headings


def test_every_relative_link_and_anchor_resolves():
  broken = []
  for doc in DOCS + [ROOT / "BENCHMARKS.md", ROOT / "benchmarks" / "HISTORY.md"]:
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
