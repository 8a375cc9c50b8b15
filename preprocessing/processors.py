"""Task processors: which TSV files a task has and which columns mean what.

run_classifier.py has one near-identical class per task. Here a task is data —
a `TaskSpec` of per-split `SplitSpec`s — read by one generic parser; the
built-in tasks reproduce run_classifier's file names, columns, header
handling, guids, label lists and test placeholder labels exactly, and a new
dataset is a YAML file (see examples/tasks/), not code.

TSV is read as run_classifier reads it (csv.reader, delimiter tab, quotechar
None): a '"' is a literal character. Lines end at LF (a CR before it is
dropped), and a missing final newline is fine. Fields stay bytes: invalid
UTF-8 is dropped by the tokenizer exactly as BERT's convert_to_unicode does.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from bertline import configs, fileio
from bertline.line_shards import DEFAULT_CHUNK_BYTES, ByteRange, read_range


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """How to read one split's TSV file.

  Attributes:
    file: str. Path relative to the data dir.
    text_a: int. Column of the first text.
    text_b: int or None. Column of the second text (sentence-pair tasks).
    label: int or None. Column of the label (negative counts from the end);
      None means the split has no labels and `placeholder_label` is used.
    header: bool. Whether the first line is a header to skip.
    placeholder_label: str or None. Label given to every row of an unlabelled
      (test) split, as run_classifier does.
    guid_prefix: str or None. The guid's prefix; defaults to the split name.
    guid_column: int or None. Column whose value makes the guid (MNLI);
      otherwise the guid is "<prefix>-<line index>".
    filter_column: int or None. Keep only rows whose column equals
      `filter_value` (XNLI dev keeps one language).
    filter_value: str or None.
  """

  file: str
  text_a: int
  text_b: Optional[int] = None
  label: Optional[int] = None
  header: bool = False
  placeholder_label: Optional[str] = None
  guid_prefix: Optional[str] = None
  guid_column: Optional[int] = None
  filter_column: Optional[int] = None
  filter_value: Optional[str] = None

  def __post_init__(self):
    parts = self.file.replace("\\", "/").split("/")
    if (not self.file or self.file.startswith(("/", "~")) or "://" in self.file
        or ".." in parts or (len(self.file) > 1 and self.file[1] == ":")):
      # A task file is data, often someone else's: it may name files inside
      # --data-dir only, never walk out of it (../../../etc/passwd was copied
      # line by line into rejected/).
      raise ValueError(f"split file {self.file!r} must be a path inside --data-dir (relative, "
                       "without '..'); put the TSV there, or point --data-dir at its folder")
    if self.label is None and self.placeholder_label is None:
      raise ValueError("a split needs a `label` column or a `placeholder_label`")
    if (self.filter_column is None) != (self.filter_value is None):
      raise ValueError("`filter_column` and `filter_value` go together")

  @functools.cached_property  # asked once per row; frozen, so it cannot go stale
  def columns_needed(self) -> int:
    cols = [c for c in (self.text_a, self.text_b, self.label, self.guid_column,
                        self.filter_column) if c is not None]
    return max([c + 1 if c >= 0 else -c for c in cols])


@dataclasses.dataclass
class TaskSpec:
  """A classification task.

  Attributes:
    name: str. Task name, recorded in metadata.json.
    splits: dict of split name ("train", "dev", "test") to SplitSpec.
    labels: list of str or None. Label list in id order; None infers the
      sorted distinct labels of the train split.
    label_map: dict. Labels renamed on reading (XNLI's "contradictory").
    multi_label: bool. The label column holds a set of labels (none, one or
      several), joined by `label_separator`: each example gets a multi-hot
      label vector and the classifier a sigmoid per label.
    label_separator: str. What joins the labels of a set (e.g. ","); required
      with multi_label.
  """

  name: str
  splits: Dict[str, SplitSpec]
  labels: Optional[List[str]] = None
  label_map: Dict[str, str] = dataclasses.field(default_factory=dict)
  multi_label: bool = False
  label_separator: str = ""

  def __post_init__(self):
    if self.multi_label and not self.label_separator:
      raise ValueError("multi_label is true but label_separator is missing: set what joins a "
                       "row's labels, e.g. label_separator: \",\"")
    if self.label_separator and not self.multi_label:
      raise ValueError(f"label_separator {self.label_separator!r} without multi_label: true; "
                       "add multi_label: true for a label column holding sets, or remove it")
    if self.multi_label and self.labels is not None and len(self.labels) < 2:
      raise ValueError(f"a multi-label task needs at least two labels, got {self.labels}")

  def label_set(self, field: str) -> Tuple[str, ...]:
    """A multi-label row's labels: split, stripped, renamed, each once, in the row's order."""
    out: List[str] = []
    for part in field.split(self.label_separator):
      part = self.label_map.get(part.strip(), part.strip())
      if part and part not in out:
        out.append(part)
    return tuple(out)

  @property
  def has_text_b(self) -> bool:
    return any(s.text_b is not None for s in self.splits.values())


def _glue(file, text_a, text_b=None, label=None, **kw):
  return SplitSpec(file=file, text_a=text_a, text_b=text_b, label=label, **kw)


# run_classifier.py's processors, as data. Line indices count the header.
BUILTIN_TASKS: Dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", labels=["0", "1"], splits={
        "train": _glue("train.tsv", text_a=3, label=1),
        "dev": _glue("dev.tsv", text_a=3, label=1),
        "test": _glue("test.tsv", text_a=1, header=True, placeholder_label="0"),
    }),
    "mnli": TaskSpec("mnli", labels=["contradiction", "entailment", "neutral"], splits={
        "train": _glue("train.tsv", 8, 9, label=-1, header=True, guid_column=0),
        "dev": _glue("dev_matched.tsv", 8, 9, label=-1, header=True, guid_column=0,
                     guid_prefix="dev_matched"),
        "test": _glue("test_matched.tsv", 8, 9, header=True, guid_column=0,
                      placeholder_label="contradiction"),
    }),
    "mrpc": TaskSpec("mrpc", labels=["0", "1"], splits={
        "train": _glue("train.tsv", 3, 4, label=0, header=True),
        "dev": _glue("dev.tsv", 3, 4, label=0, header=True),
        "test": _glue("test.tsv", 3, 4, header=True, placeholder_label="0"),
    }),
    "xnli": TaskSpec("xnli", labels=["contradiction", "entailment", "neutral"],
                     label_map={"contradictory": "contradiction"}, splits={
        "train": _glue("multinli/multinli.train.zh.tsv", 0, 1, label=2, header=True),
        "dev": _glue("xnli.dev.tsv", 6, 7, label=1, header=True,
                     filter_column=0, filter_value="zh"),
    }),
    "sst-2": TaskSpec("sst-2", labels=["0", "1"], splits={
        "train": _glue("train.tsv", 0, label=1, header=True),
        "dev": _glue("dev.tsv", 0, label=1, header=True),
        "test": _glue("test.tsv", 1, header=True, placeholder_label="0"),
    }),
    "chnsenticorp": TaskSpec("chnsenticorp", labels=["0", "1"], splits={
        "train": _glue("train.tsv", 1, label=0, header=True),
        "dev": _glue("dev.tsv", 1, label=0, header=True),
        "test": _glue("test.tsv", 1, label=0, header=True),
    }),
    "lcqmc": TaskSpec("lcqmc", labels=["0", "1"], splits={
        "train": _glue("train.tsv", 0, 1, label=2),
        "dev": _glue("dev.tsv", 0, 1, label=2),
        "test": _glue("test.tsv", 0, 1, label=2),
    }),
}


def get_task(name: Optional[str] = None, task_config: Optional[str] = None) -> TaskSpec:
  """A built-in task by name, or a custom task from a YAML file."""
  if task_config:
    task = configs.load_yaml(TaskSpec, task_config)
    if name and name != task.name:
      raise ValueError(f"--task {name!r} but {task_config} declares name {task.name!r}; "
                       "drop --task or make them agree.")
    return task
  if not name:
    raise ValueError("give --task NAME (one of: " + ", ".join(BUILTIN_TASKS) +
                     ") or --task-config FILE.yaml for a custom TSV task")
  key = name.lower()
  if key not in BUILTIN_TASKS:
    raise ValueError(f"unknown task {name!r}; built-in tasks are {', '.join(BUILTIN_TASKS)}. "
                     "For another dataset describe it in YAML and pass --task-config.")
  return BUILTIN_TASKS[key]


class Example(NamedTuple):
  """One parsed row. Texts are bytes (decoded by the tokenizer); a multi-label task's label is
  the tuple of the row's labels (maybe empty)."""
  guid: str
  text_a: bytes
  text_b: Optional[bytes]
  label: Union[str, Tuple[str, ...]]


class Rejected(NamedTuple):
  """A row that could not become an example, kept with where and why."""
  file: str
  line: int  # 1-based, as editors show it
  reason: str
  raw: bytes


def iter_lines(path: str) -> Iterator[bytes]:
  """Lines of a TSV file without their LF / CRLF ends; no final empty line (one pass)."""
  with fileio.open_read(path) as f:
    carry = b""
    while True:
      block = f.read(DEFAULT_CHUNK_BYTES)
      if not block:
        break
      lines = (carry + block).split(b"\n")
      carry = lines.pop()
      for line in lines:
        yield line[:-1] if line.endswith(b"\r") else line
    if carry:
      yield carry[:-1] if carry.endswith(b"\r") else carry


# What Excel and Notepad put at the start of a "UTF-8" file.
UTF8_BOM = b"\xef\xbb\xbf"


def _decode(field: bytes) -> str:
  return field.decode("utf-8", "ignore")


def parse_row(task: TaskSpec, split: str, spec: SplitSpec, index: int, line: bytes,
              label_set: Optional[set], file: str):
  """Parses line `index` (0-based, header included) of a split.

  Returns:
    An Example, a Rejected, or None for lines the reference skips (the header,
    rows of another language).
  """
  if index == 0 and line.startswith(UTF8_BOM):
    line = line[len(UTF8_BOM):]  # as utf-8-sig reads it: a mark, not text (nor a label)
  if spec.header and index == 0:
    return None
  fields = line.split(b"\t")
  if len(fields) < spec.columns_needed:
    return Rejected(file, index + 1, f"expected at least {spec.columns_needed} tab-separated "
                    f"columns, found {len(fields)}", line)
  if spec.filter_column is not None and _decode(fields[spec.filter_column]) != spec.filter_value:
    return None
  if spec.label is None:
    label = (task.label_set(spec.placeholder_label) if task.multi_label
             else spec.placeholder_label)
  else:
    try:
      # Strict: run_classifier's decode-and-ignore read b"1\xff" as "1", a label the
      # row never had.
      label = fields[spec.label].decode("utf-8")
    except UnicodeDecodeError:
      return Rejected(file, index + 1, f"label {fields[spec.label]!r} is not valid UTF-8", line)
    label = task.label_set(label) if task.multi_label else task.label_map.get(label, label)
    unknown = [x for x in (label if task.multi_label else (label,))
               if label_set is not None and x not in label_set]
    if unknown:
      return Rejected(file, index + 1, f"label {unknown[0]!r} is not in the task's labels "
                      f"{sorted(label_set)}", line)
  prefix = spec.guid_prefix or split
  suffix = _decode(fields[spec.guid_column]) if spec.guid_column is not None else str(index)
  text_b = fields[spec.text_b] if spec.text_b is not None else None
  return Example(f"{prefix}-{suffix}", fields[spec.text_a], text_b, label)


def labels_in(task: TaskSpec, split: str, r: ByteRange) -> set:
  """The distinct labels of the rows a range owns (the train split's make the label list)."""
  spec = task.splits[split]
  labels = set()
  for i, line in enumerate(read_range(r)):
    index = i if r.start == 0 else i + 1  # parse_row only needs to know line 0 (a header)
    row = parse_row(task, split, spec, index, line, None, r.path)
    if isinstance(row, Example):
      labels.update(row.label if task.multi_label else (row.label,))
  return labels


def no_labels_error(task: TaskSpec, path: str) -> ValueError:
  return ValueError(f"{path}: no labelled rows to infer the label list of task {task.name!r} "
                    "from; fix the file, or declare `labels: [...]` in the task YAML.")


def infer_labels(task: TaskSpec, data_dir: str) -> List[str]:
  """The task's labels: declared, or the sorted labels of the train split (reads it once)."""
  if task.labels:
    return list(task.labels)
  spec = require_train_labels(task)
  path = fileio.join(data_dir, spec.file)
  labels = labels_in(task, "train", ByteRange(path, 0, fileio.size(path)))
  if not labels:
    raise no_labels_error(task, path)
  return sorted(labels)


def require_train_labels(task: TaskSpec) -> SplitSpec:
  """The labelled train split labels are inferred from, or why there is none."""
  spec = task.splits.get("train")
  if spec is None or spec.label is None:
    raise ValueError(f"task {task.name!r} declares no `labels` and has no labelled train split "
                     "to infer them from; add `labels: [...]` to its YAML.")
  return spec
