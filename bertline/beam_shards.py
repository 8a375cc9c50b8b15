"""The line-sharded start of both Beam jobs: ranges -> line counts -> shard plan -> shards.

Preprocess and score read large line-oriented files in parallel and must
still know every line's number in its file (bertline/line_shards.py says
how). Both graphs open with the same chain, declared here once:

  Ranges (one element per byte range) -> CountLines (each range's line count,
  one read of its bytes) -> GroupByKey (one element: every count) ->
  PlanShards (first line numbers, one ShardTask per output shard) ->
  GroupByKey by shard (spreads the shards over the workers)

`LineShards` yields (key, [ShardTask]) for the job's own per-shard DoFn,
which writes its shard and reports through `line_shards.write_report`. Only
Create, ParDo and GroupByKey: Beam's Dask runner computes only a pipeline's
last step and mixes tagged outputs, so one chain with one sink is what every
runner runs alike.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam

from bertline import line_shards


class ShardTask(NamedTuple):
  """One output shard: consecutive ranges of a group's files, each with its first line's index.

  group: preprocess's split ("train", ...); "" for score's one group.
  labels: preprocess's label list (given, or inferred from the train split's
    rows while they are counted); () for score.
  """
  group: str
  shard: int
  num_shards: int
  ranges: Tuple[Tuple[line_shards.ByteRange, int], ...]
  labels: Tuple[str, ...] = ()


# What a job may also gather while each range is read for its count: (group, range) -> values.
Gather = Callable[[str, line_shards.ByteRange], Iterable[str]]


def _count_range(item, gather: Optional[Gather]):
  """(group, index, range) -> (None, (group, index, lines, gathered)); one read of the range."""
  group, index, r = item
  found = sorted(gather(group, r)) if gather else []
  yield None, (group, index, line_shards.count_lines(r), found)


class PlanShardsFn(beam.DoFn):
  """Every range's line count -> one ShardTask per output shard, keyed by a global number.

  Runs once, after every range was counted: a range's first line index is the
  sum of the lines before it in its file. The labels are the given ones, or
  the sorted union of what CountLines gathered.
  """

  def __init__(self, ranges: Dict[str, List[line_shards.ByteRange]], num_shards: Dict[str, int],
               labels: Optional[Sequence[str]]):
    self._ranges, self._num_shards = ranges, num_shards
    self._labels = None if labels is None else tuple(labels)

  def process(self, keyed):
    _, counted = keyed
    lines = {(group, index): n for group, index, n, _ in counted}
    labels = self._labels
    if labels is None:
      labels = tuple(sorted(set().union(*(set(found) for _, _, _, found in counted))))
    key = 0
    for group, ranges in self._ranges.items():
      counts = [lines[(group, index)] for index in range(len(ranges))]
      num_shards = self._num_shards[group]
      for shard, (part, _) in enumerate(line_shards.shard_tasks(ranges, counts, num_shards)):
        yield key, ShardTask(group, shard, num_shards, part, labels)
        key += 1


class LineShards(beam.PTransform):
  """The pipeline's begin -> (key, [ShardTask]), each shard on one worker.

  Args:
    ranges: {group: its files' byte ranges, in order} (line_shards.plan_ranges).
    num_shards: {group: how many output shards}.
    gather: called on each range as it is counted; its values are unioned
      into the tasks' labels (preprocess infers a task's labels so).
    labels: the labels every task carries, when they are known (not gathered).
  """

  def __init__(self, ranges: Dict[str, List[line_shards.ByteRange]], num_shards: Dict[str, int],
               gather: Optional[Gather] = None, labels: Optional[Sequence[str]] = ()):
    super().__init__()
    self._ranges, self._num_shards, self._gather, self._labels = (ranges, num_shards, gather,
                                                                   labels)

  def expand(self, pbegin):
    items = [(group, i, r) for group, ranges in self._ranges.items() for i, r in enumerate(ranges)]
    return (pbegin
            | "Ranges" >> beam.Create(items)
            | "CountLines" >> beam.FlatMap(_count_range, self._gather)
            | "AllCounts" >> beam.GroupByKey()
            | "PlanShards" >> beam.ParDo(PlanShardsFn(self._ranges, self._num_shards,
                                                      self._labels))
            | "SpreadShards" >> beam.GroupByKey())
