"""`bertline score`: concurrent writers refused, a killed run's leftovers never published."""

import json
import os
import subprocess
import sys

from bertline import errors
from bertline.evaluator import batch_score
from bertline.evaluator.config import ScoreConfig


def _texts(path, n, word):
  path.write_text("".join(f"{word} {i}\n" for i in range(n)))
  return path


def test_two_concurrent_scorings_never_mix_and_the_second_is_refused(exported, tmp_path):
  out = tmp_path / "out"
  inputs = [_texts(tmp_path / "a.txt", 300, "great"), _texts(tmp_path / "b.txt", 200, "awful")]
  env = dict(os.environ, NO_GCE_CHECK="True")
  procs = [subprocess.Popen([sys.executable, "-m", "bertline", "score", "--model",
                             exported["path"], "--input", str(i), "--output", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in inputs]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  assert sorted(code for code, _ in results) == [0, errors.BAD_INPUT], results
  (refused,) = [err for code, err in results if code]
  assert ("another `bertline score` is writing to" in refused
          or "holds a finished scoring" in refused)
  summary = json.loads((out / batch_score.SUMMARY_FILE).read_text())
  rows = [json.loads(line) for name in summary["files"]
          for line in (out / name).read_text().splitlines()]
  assert len(rows) == summary["scored"] in (300, 200)  # one input's rows, whole
  assert len({r["id"].rsplit(":", 1)[0] for r in rows}) == 1


def test_a_killed_runs_temporary_files_are_cleared_and_never_published(exported, tmp_path):
  out = tmp_path / "out"
  stale = out / f"{batch_score.TEMPORARY_PREFIX}deadbeef"
  stale.mkdir(parents=True)
  (stale / "predictions-00000-of-00001.jsonl").write_text('{"id": "stale"}\n')
  text = _texts(tmp_path / "a.txt", 20, "fine")
  summary = batch_score.run(ScoreConfig(exported["path"], [str(text)], str(out)))
  assert not stale.exists() and summary["scored"] == 20
  assert sorted(os.listdir(out)) == sorted(summary["files"] + ["rejected", "summary.json",
                                                                ".bertline-score.lock"])
