"""`bertline score` on Beam: every row scored or rejected, probabilities those of serving_default."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import errors
from bertline.evaluator import batch_score
from bertline.evaluator.config import ScoreConfig
from tests.reliability.conftest import bertline, last_line


def _tweets(tweets_data, n):
  """Real tweets that are valid UTF-8 (the corpus has some that are not: those are rejected)."""
  texts = []
  for split in ("dev", "test", "train"):
    with open(os.path.join(tweets_data["tsv"], f"{split}.tsv"), "rb") as f:
      for line in f.read().split(b"\n")[1:]:
        text = line.split(b"\t", 1)[-1]
        try:
          if text.decode("utf-8").strip():
            texts.append(text)
        except UnicodeDecodeError:
          continue
  assert len(texts) >= n
  return texts[:n]


def _serving_probabilities(path, texts):
  import tensorflow_text  # noqa: F401
  signature = tf.saved_model.load(path).signatures["serving_default"]
  return signature(text_a=tf.constant(texts))["probabilities"].numpy()


def _predictions(out):
  summary = json.load(open(os.path.join(out, batch_score.SUMMARY_FILE)))
  rows = []
  for name in summary["files"]:
    with open(os.path.join(out, name), "rb") as f:
      data = gzip.decompress(f.read()) if name.endswith(".gz") else f.read()
    rows += [json.loads(line) for line in data.decode().splitlines()]
  with open(os.path.join(out, summary["rejected_file"]), "rb") as f:
    rejected = f.read().split(b"\n")[1:-1]
  return summary, rows, rejected


def test_text_lines_are_scored_as_serving_default_scores_them_and_bad_lines_rejected(
    exported, tweets_data, tmp_path):
  texts = _tweets(tweets_data, 150)
  lines = texts[:50] + [b"caf\xe9 latte", b"", b"   "] + texts[50:]
  path = tmp_path / "new.txt"
  path.write_bytes(b"\n".join(lines) + b"\n")
  out = str(tmp_path / "scored")
  summary = batch_score.run(ScoreConfig(
      exported["path"], [str(path)], out, batch_size=16, chunk_bytes=2000))
  summary, rows, rejected = _predictions(out)
  assert summary["rows"] == len(lines) and summary["scored"] == len(texts)
  assert summary["rejected"] == 3 and len(summary["files"]) > 1
  assert summary["model_version"] == "3" and all(r["model_version"] == "3" for r in rows)
  # Ids are FILE:LINE, counted from 1, for exactly the good lines.
  good_lines = [i + 1 for i, line in enumerate(lines) if line.strip() and i not in (50,)]
  assert [r["id"] for r in rows] == [f"{path}:{n}" for n in good_lines]
  # The probabilities are serving_default's, called directly on the same texts.
  want = _serving_probabilities(exported["path"], [t.decode() for t in texts])
  got = np.array([r["probabilities"] for r in rows])
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert [r["label"] for r in rows] == [summary["labels"][i] for i in want.argmax(-1)]
  assert [line.split(b"\t")[1:3] for line in rejected] == [
      [b"51", b"not valid UTF-8 (byte 3: b'\\xe9')"], [b"52", b"text_a is empty"],
      [b"53", b"text_a is empty"]]
  assert rejected[0].endswith(b"\tcaf\xe9 latte")
  # A finished scoring is never replaced silently.
  with pytest.raises(FileExistsError, match="holds a finished scoring"):
    batch_score.run(ScoreConfig(exported["path"], [str(path)], out))


def test_tsv_by_header_and_json_lines_with_ids_from_the_last_pushed_version(
    exported, tweets_data, tmp_path):
  from bertline.exporter import push
  registry = str(tmp_path / "registry")
  push.push(exported["path"], registry, force=True)
  texts = [t.decode("utf-8", "replace") for t in _tweets(tweets_data, 40)]
  inputs = tmp_path / "in"
  inputs.mkdir()
  tsv = ["row_id\tsource\ttext"] + [f"t{i}\tweb\t{t}" for i, t in enumerate(texts[:20])]
  tsv.insert(5, "short\trow")
  (inputs / "a.tsv").write_text("\n".join(tsv) + "\n")
  out = str(tmp_path / "tsv-out")
  batch_score.run(ScoreConfig(
      registry, [str(inputs / "*.tsv")], out, "tsv", "text", id="row_id", compression="gzip"))
  summary, rows, rejected = _predictions(out)
  assert summary["model"] == os.path.join(registry, "3")
  assert [r["id"] for r in rows] == [f"t{i}" for i in range(20)]
  assert summary["files"][0].endswith(".jsonl.gz")
  assert rejected == [f"{inputs / 'a.tsv'}\t6\tno column 2 (text_a): the row has 2 "
                      "tab-separated column(s)\tshort\trow".encode()]
  np.testing.assert_allclose([r["probabilities"] for r in rows],
                             _serving_probabilities(exported["path"], texts[:20]), atol=1e-5)

  jsonl = [json.dumps({"key": 100 + i, "body": t}) for i, t in enumerate(texts[20:])]
  jsonl[3:3] = ['{"key": 1, "body": ', json.dumps({"key": 2}), json.dumps({"key": 3, "body": 7}),
                "[1, 2]"]
  (inputs / "b.jsonl").write_text("\n".join(jsonl) + "\n")
  out = str(tmp_path / "jsonl-out")
  batch_score.run(ScoreConfig(registry, [str(inputs / "b.jsonl")], out, "jsonl", "body", id="key"))
  summary, rows, rejected = _predictions(out)
  assert [r["id"] for r in rows] == [str(100 + i) for i in range(20)]
  assert [line.split(b"\t")[2] for line in rejected] == [
      b"malformed JSON: Expecting value at column 20", b"no field 'body' (text_a)",
      b"text_a is a int, not a string", b"a JSON line must be an object, not list"]
  assert summary["rows"] == 24


@pytest.mark.slow  # ~20 s; preprocess's Dask equality (tests/preprocessing/test_dask.py) stays in
def test_the_dask_runner_scores_the_same(exported, tweets_data, tmp_path):
  path = tmp_path / "new.txt"
  path.write_bytes(b"\n".join(_tweets(tweets_data, 60) + [b"\xff"]) + b"\n")
  outs = {}
  for name, args in (("direct", ()), ("dask", ("--runner", "DaskRunner"))):
    outs[name] = str(tmp_path / name)
    batch_score.run(ScoreConfig(exported["path"], [str(path)], outs[name], chunk_bytes=1500,
                                beam_args=args))
  direct, dask = _predictions(outs["direct"]), _predictions(outs["dask"])
  assert direct[1] == dask[1] and direct[2] == dask[2] and len(direct[1]) == 60


def test_the_cli_names_the_fault_in_one_line(exported, tmp_path):
  path = tmp_path / "in.txt"
  path.write_text("good\n")
  result = bertline("score", "--model", str(tmp_path / "nowhere"), "--input", str(path),
                    "--output", str(tmp_path / "o"))
  assert result.returncode == errors.BAD_INPUT
  assert ("neither an exported version (no saved_model.pb or model.tflite) nor a push target"
          in last_line(result))
  result = bertline("score", "--model", exported["path"], "--input", str(tmp_path / "*.csv"),
                    "--output", str(tmp_path / "o"))
  assert result.returncode == errors.BAD_INPUT and "no file matches" in last_line(result)
  result = bertline("score", "--model", exported["path"], "--input", str(path), "--output",
                    str(tmp_path / "o"), "--text-b", "x")
  assert result.returncode == errors.BAD_INPUT
  assert "--text-a, --text-b and --id need --format tsv or jsonl" in last_line(result)
