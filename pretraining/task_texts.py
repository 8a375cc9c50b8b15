"""The labeled corpus's own texts as pre-training input: the train split only, labels dropped.

Domain-adaptive pre-training on the very reviews (or tweets, or sentence pairs) a classifier
is then fine-tuned on is the cheapest domain corpus there is. Only the train split is read:
dev and test stay out of the pre-training corpus, so the evaluation never scores a text the
model has already seen, even without its label. Rows are read as preprocess reads them
(preprocessing/processors.py: the task's columns, its header and filters); a row preprocess
would reject for its columns is left out here too, and counted.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from bertline import fileio
from bertline.preprocessing import processors

log = logging.getLogger("bertline.pretrain_data")

TRAIN = "train"


class Written(NamedTuple):
  path: str
  examples: int  # rows whose texts were written
  skipped: int  # rows without a text, or with too few columns


def write_train_texts(task: processors.TaskSpec, data_dir: str, path: str,
                      input_format: str) -> Written:
  """Writes the train split's texts to `path` in pretrain-data's `input_format`.

  sentences (create_pretraining_data.py's format): each row a document, text_a and text_b
  (pair tasks) its sentences, a blank line after it. documents: each row one line.
  """
  spec = task.splits.get(TRAIN)
  if spec is None:
    raise ValueError(f"task {task.name!r} has no train split to take pre-training texts from; "
                     "set pretrain.labeled_texts: false and give pretrain.input")
  source = fileio.join(data_dir, spec.file)
  out, examples, skipped = [], 0, 0
  for index, line in enumerate(processors.iter_lines(source)):
    row = processors.parse_row(task, TRAIN, spec, index, line, None, source)
    if row is None:
      continue
    texts = [] if isinstance(row, processors.Rejected) else [
        b" ".join(t.split()) for t in (row.text_a, row.text_b) if t is not None]
    texts = [t for t in texts if t]
    if not texts:
      skipped += 1
      continue
    examples += 1
    if input_format == "documents":
      out.append(b" ".join(texts) + b"\n")
    else:
      out.append(b"\n".join(texts) + b"\n\n")
  if not examples:
    raise ValueError(f"{source}: no text to pre-train on in the train split ({skipped} rows "
                     "without one); check the task's text columns")
  fileio.write_bytes_atomic(path, b"".join(out))
  log.info("Pre-training texts: %d rows of %s (the train split, labels dropped; dev and test "
           "held out) -> %s%s", examples, source, path,
           f"; {skipped} rows without a text left out" if skipped else "")
  return Written(path, examples, skipped)
