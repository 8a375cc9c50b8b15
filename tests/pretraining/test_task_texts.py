"""pretraining/task_texts.py: the labeled corpus's train-split texts as pre-training input."""

import pytest

from bertline.preprocessing import processors
from bertline.pretraining import task_texts

_MRPC_TRAIN = (
    "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    "1\t1\t2\tAmrozi accused his brother .\tReferring to him , Amrozi accused his brother .\n"
    "0\t3\t4\tYucaipa owned Dominick 's\tYucaipa bought Dominick 's in 1995 .\n"
    "1\t5\t6\ttoo few columns\n"
    "0\t7\t8\t   \t \n")


@pytest.fixture
def mrpc_dir(tmp_path):
  (tmp_path / "train.tsv").write_text(_MRPC_TRAIN, encoding="utf-8")
  return str(tmp_path)


def test_a_pair_task_gives_a_document_of_two_sentences_per_row(mrpc_dir, tmp_path):
  out = str(tmp_path / "texts.txt")
  written = task_texts.write_train_texts(processors.get_task("mrpc"), mrpc_dir, out, "sentences")
  # create_pretraining_data.py's format: a sentence per line, a blank line after a document.
  assert open(out, encoding="utf-8").read() == (
      "Amrozi accused his brother .\nReferring to him , Amrozi accused his brother .\n\n"
      "Yucaipa owned Dominick 's\nYucaipa bought Dominick 's in 1995 .\n\n")
  # The row preprocess rejects for its columns and the row without text are left out, counted.
  assert (written.examples, written.skipped) == (2, 2)


def test_documents_format_puts_each_row_on_one_line(mrpc_dir, tmp_path):
  out = str(tmp_path / "texts.txt")
  task_texts.write_train_texts(processors.get_task("mrpc"), mrpc_dir, out, "documents")
  assert open(out, encoding="utf-8").read().splitlines() == [
      "Amrozi accused his brother . Referring to him , Amrozi accused his brother .",
      "Yucaipa owned Dominick 's Yucaipa bought Dominick 's in 1995 ."]


def test_a_train_split_without_text_is_named(tmp_path):
  (tmp_path / "train.tsv").write_text("label\ttext_a\n1\t \n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"train\.tsv: no text to pre-train on .*1 rows"):
    task_texts.write_train_texts(processors.get_task("chnsenticorp"), str(tmp_path),
                                 str(tmp_path / "t.txt"), "documents")
