"""Line-exact parallel reading of text files: byte ranges, line counts and shards.

Both Beam jobs (preprocess, score) read large line-oriented files in
parallel and must still know every line's number in its file (run_classifier's
guids, score's FILE:LINE ids). The driver cuts each file into byte ranges from
its size alone — it reads no contents, so launching a job costs the same for
any corpus — and the workers count the lines each range owns; the running sum
of those counts is each range's first line number, and `shard_tasks` groups
consecutive ranges into output shards. Each shard's worker then reports to the
driver through files (`write_report`: its counts, its rejected rows), which the
driver gathers once the runner is done (`read_counts`, `gather_rejected`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, NamedTuple, Sequence, Tuple

from bertline import fileio, schema


class ByteRange(NamedTuple):
  """Bytes [start, end) of a file. It owns the lines that start inside it.

  Ranges are cut from the file's size alone, so planning reads no file
  contents; a worker finds its first line start itself (a line that begins
  before `start` belongs to the range before), and reads past `end` to finish
  its last line.
  """
  path: str
  start: int
  end: int


DEFAULT_CHUNK_BYTES = 1 << 20
_BLOCK = 1 << 16


def plan_ranges(path: str, size: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                min_ranges: int = 1) -> List[ByteRange]:
  """Cuts a file of `size` bytes into ranges of at most `chunk_bytes` (at least `min_ranges`).

  An empty file is one empty range, so its split still has a shard and counts.
  """
  if size <= 0:
    return [ByteRange(path, 0, 0)]
  step = max(1, min(chunk_bytes, -(-size // max(1, min_ranges))))
  return [ByteRange(path, s, min(size, s + step)) for s in range(0, size, step)]


def count_lines(r: ByteRange) -> int:
  """How many lines start inside the range (one read of its bytes).

  A line starts at offset 0 and right after every LF; those after the file's
  last byte start nothing. Reading [start - 1, end - 1) and counting LFs
  counts exactly the starts in [start, end), since end never exceeds the size.
  """
  if r.end <= r.start:
    return 0
  with fileio.open_read(r.path) as f:
    if r.start == 0:
      return 1 + f.read(r.end - 1).count(b"\n")
    f.seek(r.start - 1)
    return f.read(r.end - r.start).count(b"\n")


def _read_to_line_end(f) -> bytes:
  """From the current position up to and including the next LF (or the end of the file)."""
  parts = []
  while True:
    block = f.read(_BLOCK)
    if not block:
      break
    cut = block.find(b"\n")
    if cut >= 0:
      parts.append(block[:cut + 1])
      break
    parts.append(block)
  return b"".join(parts)


def read_range(r: ByteRange) -> Iterator[bytes]:
  """The lines the range owns, in order, without their LF / CRLF ends."""
  if r.end <= r.start:
    return
  with fileio.open_read(r.path) as f:
    first = r.start
    if r.start > 0:
      f.seek(r.start - 1)
      if f.read(1) != b"\n":  # mid-line: that line belongs to the range before
        first = r.start + len(_read_to_line_end(f))
        if first >= r.end:
          return
    f.seek(first)
    data = f.read(r.end - first)
    if data and not data.endswith(b"\n"):
      data += _read_to_line_end(f)  # the last line started inside: finish it
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  for line in lines:
    yield line[:-1] if line.endswith(b"\r") else line


def shard_tasks(ranges: Sequence[ByteRange], lines: Sequence[int],
                num_shards: int) -> List[Tuple[Tuple[Tuple[ByteRange, int], ...], int]]:
  """Groups consecutive ranges into `num_shards` shards.

  Args:
    ranges: a file's (or files') ranges, in order.
    lines: each range's line count (count_lines), same order.
    num_shards: how many shards; shard j takes ranges [j*R/S, (j+1)*R/S), so a
      shard holds consecutive lines and some may be empty.

  Returns:
    Per shard: ((range, index of its first line in its file), ...), and the
    number of lines the shard owns.
  """
  starts: List[Tuple[ByteRange, int]] = []
  first: Dict[str, int] = {}
  for r, n in zip(ranges, lines):
    starts.append((r, first.get(r.path, 0)))
    first[r.path] = first.get(r.path, 0) + n
  out = []
  for shard in range(num_shards):
    lo, hi = shard * len(starts) // num_shards, (shard + 1) * len(starts) // num_shards
    out.append((tuple(starts[lo:hi]), sum(lines[lo:hi])))
  return out


# --- What each shard's worker reports to the driver --------------------------------------------
REJECTED_HEADER = b"file\tline\treason\traw_row\n"


def rejected_row(file: str, line: int, reason: str, raw: bytes) -> bytes:
  """One line of a rejected-rows TSV: file, line (from 1), reason, then the raw row as read."""
  reason = reason.replace("\t", " ").replace("\n", " ")
  return f"{file}\t{line}\t{reason}\t".encode("utf-8") + raw + b"\n"


def write_report(work_dir: str, name: str, counts: Dict[str, Any], rejected: List[bytes]) -> None:
  """A shard's counts (always) and rejected rows (when there are any), for the driver."""
  if rejected:
    fileio.write_bytes_atomic(fileio.join(work_dir, schema.REJECTED_PARTS_DIR, name + ".tsv"),
                              b"".join(rejected))
  fileio.write_json_atomic(fileio.join(work_dir, schema.COUNTS_DIR, name + ".json"), counts)


def read_counts(work_dir: str, names: Sequence[str], job: str) -> List[Dict[str, Any]]:
  """Every shard's counts, in order; a shard that never reported is an error."""
  out = []
  for name in names:
    path = fileio.join(work_dir, schema.COUNTS_DIR, name + ".json")
    if not fileio.exists(path):
      raise RuntimeError(f"{path} is missing: shard {name} was never written, yet the runner "
                         f"reported success. Nothing was published; run {job} again.")
    out.append(json.loads(fileio.read_text(path)))
  return out


def gather_rejected(work_dir: str, names: Sequence[str], dest: str) -> None:
  """`dest`: the header, then the shards' rejected rows in shard (so line) order."""
  parts = [REJECTED_HEADER]
  for name in names:
    part = fileio.join(work_dir, schema.REJECTED_PARTS_DIR, name + ".tsv")
    if fileio.exists(part):
      parts.append(fileio.read_bytes(part))
  fileio.write_bytes_atomic(dest, b"".join(parts))
