"""Real unlabeled corpora in create_pretraining_data.py's format, for the pre-training tests."""

from __future__ import annotations

import re

from bertline import corpora


def _write_documents(path, documents):
  """One sentence per line, a blank line after each document."""
  with open(path, "w", encoding="utf-8") as f:
    for sentences in documents:
      f.write("\n".join(sentences) + "\n\n")
  return str(path)


def chinese_corpus(path, per_class):
  return _write_documents(path, [
      [s for s in re.split(r"(?<=[。！？!?])", text) if s.strip()]
      for _, text in corpora.read_chinese_reviews(limit_per_class=per_class)])


def english_corpus(path, limit):
  documents = []
  for _, raw in corpora.read_tweets(limit):
    try:  # Google's script reads UTF-8 strictly; invalid bytes are tested on their own below
      text = raw.decode("utf-8")
    except UnicodeDecodeError:
      continue
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    if sentences:
      documents.append(sentences)
  return _write_documents(path, documents)
