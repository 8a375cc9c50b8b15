"""Byte ranges cover every line once, with its number; shards take consecutive ranges."""

import pytest

from bertline import line_shards
from bertline.preprocessing.processors import iter_lines


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("final_newline", [True, False])
def test_ranges_cover_every_line_once_with_its_index(tmp_path, chunk_bytes, final_newline):
  # CRLF, empty lines, a line longer than a range, and a last line with or without its LF.
  data = b"h\tx\r\na\tb\n\n" + b"long" * 20 + b"\tz\r\nlast\tline" + (b"\n" if final_newline else b"")
  path = tmp_path / "t.tsv"
  path.write_bytes(data)
  expected = [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]
  if final_newline:
    expected.pop()
  ranges = line_shards.plan_ranges(str(path), len(data), chunk_bytes)
  assert ranges[0].start == 0 and ranges[-1].end == len(data)
  assert all(a.end == b.start for a, b in zip(ranges, ranges[1:]))
  # Each range's count is exactly the lines it reads, so running sums are the line indices.
  got, first = [], 0
  for r in ranges:
    lines = list(line_shards.read_range(r))
    assert line_shards.count_lines(r) == len(lines), r
    got += list(enumerate(lines, start=first))
    first += len(lines)
  assert got == list(enumerate(expected))
  assert list(iter_lines(str(path))) == expected


def test_at_least_the_asked_number_of_ranges_and_an_empty_file_is_one_empty_range(tmp_path):
  assert len(line_shards.plan_ranges("f", 10, 1 << 20, min_ranges=4)) == 4
  assert len(line_shards.plan_ranges("f", 3, 1 << 20, min_ranges=8)) == 3  # one byte each
  assert line_shards.plan_ranges("f", 0) == [line_shards.ByteRange("f", 0, 0)]
  path = tmp_path / "e.tsv"
  path.write_bytes(b"")
  assert line_shards.count_lines(line_shards.ByteRange(str(path), 0, 0)) == 0
  assert list(line_shards.read_range(line_shards.ByteRange(str(path), 0, 0))) == []


def test_shards_take_consecutive_ranges_and_number_lines_per_file():
  ranges = [line_shards.ByteRange("a", 0, 5), line_shards.ByteRange("a", 5, 9),
            line_shards.ByteRange("b", 0, 4), line_shards.ByteRange("b", 4, 8)]
  tasks = line_shards.shard_tasks(ranges, [2, 3, 1, 0], 3)
  assert [n for _, n in tasks] == [2, 3, 1]
  assert [[(r.path, r.start, first) for r, first in part] for part, _ in tasks] == [
      [("a", 0, 0)], [("a", 5, 2)], [("b", 0, 0), ("b", 4, 1)]]
  assert line_shards.shard_tasks(ranges[:1], [2], 3)[0][0] == ()  # more shards than ranges
