"""bertline/beam_shards.py: the line-sharded chain preprocess and score share, on a real runner."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that

from bertline import beam_runner, line_shards
from bertline.beam_shards import LineShards


def _first_word_of_each_line(group, r):
  return {line.split(b" ")[0].decode() for line in line_shards.read_range(r)} if group == "a" else ()


def _run(ranges, num_shards, check, **kwargs):
  options = beam_runner.pipeline_options([])
  with beam_runner.session(options) as runner:
    p = beam.Pipeline(runner=runner, options=options)
    assert_that(p | LineShards(ranges, num_shards, **kwargs), check)
    beam_runner.run(p)


def test_every_line_lands_in_one_shard_with_its_line_number(tmp_path):
  lines = {"a": [f"w{i % 3} line {i}" for i in range(257)], "b": ["x" * 40] * 31 + [""]}
  ranges, num_shards = {}, {"a": 5, "b": 2}
  for group, rows in lines.items():
    path = tmp_path / f"{group}.txt"
    path.write_text("\n".join(rows) + "\n")
    ranges[group] = line_shards.plan_ranges(str(path), path.stat().st_size, chunk_bytes=300)

  def check(keyed):
    tasks = [task for _, group_tasks in keyed for task in group_tasks]
    assert sorted(key for key, _ in keyed) == list(range(7))  # one key per shard, all groups
    for group, rows in lines.items():
      mine = sorted((t for t in tasks if t.group == group), key=lambda t: t.shard)
      assert [t.shard for t in mine] == list(range(num_shards[group]))
      read = [(first + n, line) for t in mine for r, first in t.ranges
              for n, line in enumerate(line_shards.read_range(r))]
      assert read == [(i, row.encode()) for i, row in enumerate(rows)]
      assert all(t.labels == ("w0", "w1", "w2") for t in mine)

  _run(ranges, num_shards, check, labels=None, gather=_first_word_of_each_line)


def test_given_labels_are_carried_by_every_task(tmp_path):
  path = tmp_path / "c.txt"
  path.write_text("one\ntwo\n")
  ranges = {"": line_shards.plan_ranges(str(path), path.stat().st_size)}

  def check(keyed):
    ((key, (task,)),) = keyed
    assert key == 0 and (task.group, task.labels, task.num_shards) == ("", ("neg", "pos"), 1)

  _run(ranges, {"": 1}, check, labels=["neg", "pos"])
