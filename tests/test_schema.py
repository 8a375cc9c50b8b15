"""bertline/schema.py: metadata.json, the one file downstream stages read to find their inputs —
round trip, listed shards only, and a named fix for every way it can be wrong."""

import json
import os

import pytest

from bertline import schema


def _metadata(**splits):
  return schema.DataMetadata(
      task="sst-2", labels=["0", "1"], max_seq_length=64, do_lower_case=True,
      vocab_sha256="ab" * 32, vocab_size=30522,
      splits={name: schema.SplitInfo(file_pattern=f"{name}-*", num_examples=n, files=files)
              for name, (n, files) in splits.items()})


def test_metadata_round_trips_and_readers_read_only_the_listed_shards(tmp_path):
  listed = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
  for name in listed + ["train-00000-of-00003.tfrecord"]:  # the last: an older run's leftover
    (tmp_path / name).write_bytes(b"")
  metadata = _metadata(train=(10, listed))
  path = metadata.write(str(tmp_path))
  assert path == os.path.join(str(tmp_path), schema.METADATA_FILE)
  again = schema.read_metadata(str(tmp_path))
  assert again == metadata
  assert again.split_files(str(tmp_path), "train") == [str(tmp_path / n) for n in listed]


def test_every_way_metadata_is_wrong_names_the_file_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"metadata.json not found: .* is not a `bertline "
                                              r"preprocess` output directory"):
    schema.read_metadata(str(tmp_path))
  (tmp_path / schema.METADATA_FILE).write_text('{"task": ')
  with pytest.raises(ValueError, match=r"metadata.json is not valid JSON .*re-run `bertline "
                                       r"preprocess`"):
    schema.read_metadata(str(tmp_path))
  d = _metadata(train=(1, [])).to_dict()
  del d["labels"]
  (tmp_path / schema.METADATA_FILE).write_text(json.dumps(d))
  with pytest.raises(ValueError, match=r"metadata.json: missing key\(s\) \['labels'\]"):
    schema.read_metadata(str(tmp_path))
  metadata = _metadata(train=(2, ["train-0.tfrecord"]), dev=(0, []))
  with pytest.raises(ValueError, match=r"has no split 'test'; it has \['dev', 'train'\]. Re-run "
                                       r"preprocess with --splits including test"):
    metadata.split_files(str(tmp_path), "test")
  with pytest.raises(FileNotFoundError, match=r"1 shard\(s\) listed in .* are missing, e.g. "
                                              r".*train-0.tfrecord"):
    metadata.split_files(str(tmp_path), "train")
  with pytest.raises(FileNotFoundError, match=r"No TFRecord shards match 'dev-\*'"):
    metadata.split_files(str(tmp_path), "dev")


def test_shard_names_and_versions():
  assert schema.shard_name("train", 3, 12) == "train-00003-of-00012"
  assert schema.shard_name("dev", 0, 1, "gzip") == "dev-00000-of-00001.tfrecord.gz"
  assert [n for n in ("1", "0012", "x", "1.5", "-3", "") if schema.is_version(n)] == ["1", "0012"]
