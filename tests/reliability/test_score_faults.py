"""`bertline score`: concurrent writers refused, a killed run's leftovers never published."""

import json
import os
import re
import subprocess
import sys

from bertline import errors
from bertline.evaluator import batch_score
from bertline.evaluator.config import ScoreConfig
from tests.reliability.conftest import bertline, bertline_here


def _texts(path, n, word):
  path.write_text("".join(f"{word} {i}\n" for i in range(n)))
  return path


def test_two_concurrent_scorings_never_mix_and_the_second_is_refused(exported, tmp_path):
  out = tmp_path / "out"
  inputs = [_texts(tmp_path / "a.txt", 300, "great"), _texts(tmp_path / "b.txt", 200, "awful")]
  env = dict(os.environ, NO_GCE_CHECK="True")
  procs = [subprocess.Popen([sys.executable, "-m", "bertline", "score", "--model",
                             exported["path"], "--input", str(i), "--output", str(out),
                             "--chunk-bytes", "1024"],  # several ranges: worker processes
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in inputs]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  assert sorted(code for code, _ in results) == [0, errors.BAD_INPUT], results
  (refused,) = [err for code, err in results if code]
  # The scoring that ran used a worker process per core; its stderr is bertline's own log only,
  # none of the local runner's or its workers' chatter (`bertline --verbose` shows that).
  (ran,) = [err for code, err in results if code == 0]
  assert [line for line in ran.splitlines() if " INFO bertline.score: " not in line] == [], ran
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


# One row of every kind Python's json and UTF-8 decoders (and Python's own limits) refuse, each
# with the reason it is rejected for; none may end the job.
BAD_JSON_ROWS = [
    (b'{"text": "\\ud800"}', "text_a holds a lone surrogate ('\\ud800'), which is not text"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deep to read"),
    (b'{"text": ' + b"9" * 5000 + b"}", "JSON Python cannot read: Exceeds the limit"),
    (b'{"text": null}', "text_a is null, not a string"),
    (b'{"text": "\\u0000\\u0000"}', "text_a is empty"),
    (b'{"text": "ok", }', "malformed JSON: Expecting property name enclosed in double quotes"),
    (b'{"text": "caf\xe9"}', "not valid UTF-8 (byte 13"),
    (b'{"text": NaN}', "text_a is a float, not a string"),
]


def test_one_bad_row_of_any_kind_is_rejected_with_its_reason_and_never_ends_the_job(exported,
                                                                                    tmp_path):
  rows = [b'{"text": "what a great day"}'] + [raw for raw, _ in BAD_JSON_ROWS] + \
      [b'{"text": "never again"}']
  path = tmp_path / "rows.jsonl"
  path.write_bytes(b"\n".join(rows) + b"\n")
  out = tmp_path / "out"
  result = bertline_here("score", "--model", exported["path"], "--input", path, "--format",
                         "jsonl", "--output", out)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((out / batch_score.SUMMARY_FILE).read_text())
  assert (summary["scored"], summary["rejected"]) == (2, len(BAD_JSON_ROWS))
  rejected = (out / batch_score.REJECTED_FILE).read_bytes().split(b"\n")[1:-1]
  by_line = {int(r.split(b"\t")[1]): r.split(b"\t")[2].decode() for r in rejected}
  for line, (_, reason) in enumerate(BAD_JSON_ROWS, start=2):
    assert by_line[line].startswith(reason), (line, by_line[line])


def test_one_file_named_twice_is_refused_before_any_work(exported, tmp_path, monkeypatch):
  _texts(tmp_path / "S.txt", 3, "fine")
  monkeypatch.chdir(tmp_path)
  result = bertline_here("score", "--model", exported["path"], "--input", "S.txt", "--input",
                         "./S.txt", "--output", "out")
  assert result.returncode == errors.BAD_INPUT
  assert result.stderr.strip().splitlines()[-1].endswith(
      "--input names ./S.txt twice; its rows would be scored twice")
  assert not (tmp_path / "out").exists()


def test_a_pipe_or_fifo_input_is_refused_naming_it_never_read_as_zero_rows(exported, tmp_path):
  fifo = tmp_path / "rows.fifo"
  os.mkfifo(fifo)
  # A real shell pipe too: `--input <(printf ...)` hands bertline /dev/fd/N.
  script = (f"{sys.executable} -m bertline score --model {exported['path']} "
            f"--input <(printf 'a\\nb\\n') --output {tmp_path / 'out'}")
  in_process = bertline_here("score", "--model", exported["path"], "--input", fifo, "--output",
                             tmp_path / "out")
  in_a_shell = subprocess.run(["bash", "-c", script], env=dict(os.environ, NO_GCE_CHECK="True"),
                              capture_output=True, text=True, timeout=300)
  for result in (in_process, in_a_shell):
    assert result.returncode == errors.BAD_INPUT, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "is a pipe or FIFO, not a regular file" in last and "> rows.txt" in last, last
  assert not (tmp_path / "out").exists()


def test_a_full_disk_inside_the_score_workers_is_exit_5_ending_in_one_line(
    exported, tmp_path, small_fs):
  # ~150 bytes of JSON per row: 10,000 rows overflow the 1 MiB file system.
  rows = _texts(tmp_path / "rows.txt", 10000, "a perfectly ordinary sentence")
  # Two worker processes, as a corpus of several ranges gets (one range is scored in-process).
  result = bertline("score", "--model", exported["path"], "--input", str(rows), "--output",
                    str(small_fs / "out"), "--direct_num_workers", "2",
                    "--direct_running_mode", "multi_processing")
  assert result.returncode == errors.STORAGE, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("bertline score: error: no space left on the device"), last
  # One line: score's local workers are processes, whose own tracebacks go to a log file that
  # is named (and kept) because the job failed - not to the terminal.
  assert "Traceback" not in result.stderr and "Errno 28" not in result.stderr, result.stderr
  (named,) = re.findall(r"The local Beam workers' own output: (\S+)$", result.stderr, re.M)
  with open(named) as f:
    assert "No space left on device" in f.read()
  os.remove(named)
  assert not (small_fs / "out" / batch_score.SUMMARY_FILE).exists()
