"""Built-in processors against run_classifier.py's own, on GLUE/XNLI-layout files."""

from __future__ import annotations

import os

import pytest

from bertline import configs, corpora
from bertline.preprocessing import processors
from tests.preprocessing import reference


def _real_texts(n):
  return [t.decode("utf-8", "ignore").replace('"', '"') for _, t in corpora.read_tweets(limit=n)]


def _write(path, rows, crlf=False, final_newline=True):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  end = "\r\n" if crlf else "\n"
  text = end.join("\t".join(r) for r in rows) + (end if final_newline else "")
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(text)


def _glue_fixture(task, root):
  """Small files in each task's real layout, with real tweet text and quotes."""
  t = _real_texts(60)
  t[0] = 'He said "hi" and "left'  # an unbalanced quote must stay literal
  if task == "cola":
    for split in ("train", "dev"):
      _write(f"{root}/{split}.tsv", [["gj04", str(i % 2), "", t[i]] for i in range(10)])
    _write(f"{root}/test.tsv", [["index", "sentence"]] + [[str(i), t[i]] for i in range(8)],
           final_newline=False)
  elif task == "mrpc":
    head = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    for split in ("train", "dev", "test"):
      _write(f"{root}/{split}.tsv", [head] + [[str(i % 2), "1", "2", t[i], t[i + 20]]
                                              for i in range(12)], crlf=True)
  elif task == "mnli":
    head = ["index", "promptID", "pairID", "genre", "s1bp", "s2bp", "s1p", "s2p", "sentence1",
            "sentence2", "label1", "gold_label"]
    labels = ["contradiction", "entailment", "neutral"]
    for name in ("train.tsv", "dev_matched.tsv"):
      _write(f"{root}/{name}", [head] + [[str(100 + i)] + ["x"] * 7 + [t[i], t[i + 1], "l",
                                         labels[i % 3]] for i in range(9)])
    _write(f"{root}/test_matched.tsv", [head[:10]] + [[str(7 + i)] + ["x"] * 7 + [t[i], t[i + 2]]
                                                      for i in range(6)])
  elif task == "xnli":
    labels = ["contradictory", "entailment", "neutral"]
    _write(f"{root}/multinli/multinli.train.zh.tsv", [["premise", "hypo", "label"]] +
           [[t[i], t[i + 1], labels[i % 3]] for i in range(9)])
    _write(f"{root}/xnli.dev.tsv", [["language", "gold_label"] + ["x"] * 4 + ["s1", "s2"]] +
           [[["zh", "en", "zh"][i % 3], ["contradiction", "entailment", "neutral"][i % 3]] +
            ["x"] * 4 + [t[i], t[i + 3]] for i in range(12)])


def _ref_processor(task):
  rc = reference.reference_run_classifier()
  return {"cola": rc.ColaProcessor, "mrpc": rc.MrpcProcessor, "mnli": rc.MnliProcessor,
          "xnli": rc.XnliProcessor}[task]()


def _ours(task_name, split, root):
  task = processors.get_task(task_name)
  spec = task.splits[split]
  path = os.path.join(root, spec.file)
  rows = [processors.parse_row(task, split, spec, i, line, set(task.labels), path)
          for i, line in enumerate(processors.iter_lines(path))]
  return [(r.guid, r.text_a.decode(), r.text_b.decode() if r.text_b is not None else None, r.label)
          for r in rows if isinstance(r, processors.Example)]


@pytest.mark.parametrize("task", ["cola", "mrpc", "mnli", "xnli"])
def test_builtin_tasks_match_run_classifier(task, tmp_path):
  root = str(tmp_path)
  _glue_fixture(task, root)
  ref = _ref_processor(task)
  assert processors.get_task(task).labels == ref.get_labels()
  getters = {"train": ref.get_train_examples, "dev": ref.get_dev_examples}
  if hasattr(ref, "get_test_examples") and task != "xnli":
    getters["test"] = ref.get_test_examples
  for split, getter in getters.items():
    expected = [(e.guid, e.text_a, e.text_b, e.label) for e in getter(root)]
    assert expected, f"fixture for {task}/{split} is empty"
    assert _ours(task, split, root) == expected, f"{task}/{split}"


def test_quotes_are_literal_and_crlf_is_a_line_end(tmp_path):
  _glue_fixture("mrpc", str(tmp_path))
  rows = _ours("mrpc", "train", str(tmp_path))
  assert rows[0][1] == 'He said "hi" and "left'
  assert not any(r[1].endswith("\r") or (r[2] or "").endswith("\r") for r in rows)


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path):
  task = processors.get_task("mrpc")
  spec = task.splits["train"]
  lines = [b"Quality\t#1\t#2\ts1\ts2", b"1\ta\tb\tgood one\tgood two", b"1\tonly three",
           b"7\ta\tb\tbad label\tx", b""]
  rows = [processors.parse_row(task, "train", spec, i, line, {"0", "1"}, "train.tsv")
          for i, line in enumerate(lines)]
  assert rows[0] is None and isinstance(rows[1], processors.Example)
  assert rows[2] == processors.Rejected(
      "train.tsv", 3, "expected at least 5 tab-separated columns, found 2", b"1\tonly three")
  assert rows[3].line == 4 and "label '7' is not in the task's labels" in rows[3].reason
  assert isinstance(rows[4], processors.Rejected) and rows[4].line == 5


def test_custom_yaml_task_infers_sorted_labels(tmp_path):
  paths = corpora.write_tweets_tsv(str(tmp_path), limit=300)
  cfg = tmp_path / "task.yaml"
  cfg.write_text("name: tweets\nsplits:\n  train: {file: train.tsv, header: true, text_a: 1, label: 0}\n"
                 "  dev: {file: dev.tsv, header: true, text_a: 1, label: 0}\n")
  task = processors.get_task(task_config=str(cfg))
  assert processors.infer_labels(task, str(tmp_path)) == ["negative", "neutral", "positive"]
  assert os.path.exists(paths["test"])


def test_examples_task_configs_load():
  root = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "tasks")
  for name in sorted(os.listdir(root)):
    task = processors.get_task(task_config=os.path.join(root, name))
    assert "train" in task.splits


def test_errors_name_the_key_and_the_choices(tmp_path):
  cfg = tmp_path / "bad.yaml"
  cfg.write_text("name: x\nsplits:\n  train: {file: t.tsv, text_a: 1, labl: 0}\n")
  with pytest.raises(configs.ConfigError, match=r"bad.yaml.splits.train: unknown key 'labl'"):
    processors.get_task(task_config=str(cfg))
  with pytest.raises(ValueError, match=r"unknown task 'qnli'; built-in tasks are cola, mnli"):
    processors.get_task("qnli")


def test_a_multi_label_task_needs_its_separator_and_reads_label_sets(tmp_path):
  task_file = tmp_path / "task.yaml"
  task_file.write_text("name: t\nmulti_label: true\nlabels: [a, b]\n"
                       "splits: {train: {file: train.tsv, text_a: 1, label: 0}}\n")
  with pytest.raises(configs.ConfigError, match=r"task\.yaml: multi_label is true but "
                     r"label_separator is missing: set .* e\.g\. label_separator: \",\""):
    processors.get_task(task_config=str(task_file))
  task_file.write_text("name: t\nlabel_separator: ','\nlabels: [a, b]\n"
                       "splits: {train: {file: train.tsv, text_a: 1, label: 0}}\n")
  with pytest.raises(configs.ConfigError, match=r"label_separator ',' without multi_label"):
    processors.get_task(task_config=str(task_file))
  task_file.write_text("name: t\nmulti_label: true\nlabel_separator: '|'\nlabels: [a, b]\n"
                       "label_map: {B: b}\n"
                       "splits: {train: {file: train.tsv, text_a: 1, label: 0}}\n")
  task = processors.get_task(task_config=str(task_file))
  spec = task.splits["train"]
  parse = lambda line: processors.parse_row(task, "train", spec, 3, line, {"a", "b"}, "f.tsv")  # noqa: E731
  assert parse(b"b| a |b\ttext").label == ("b", "a")  # stripped, once each, in the row's order
  assert parse(b"B\ttext").label == ("b",)  # label_map applies to each label
  assert parse(b"\ttext").label == ()  # an empty set is a label set too
  rejected = parse(b"a|c\ttext")
  assert isinstance(rejected, processors.Rejected) and rejected.line == 4
  assert rejected.reason == "label 'c' is not in the task's labels ['a', 'b']"


def test_the_example_hashtags_task_is_the_real_hashtag_corpus():
  task = processors.get_task(task_config=os.path.join(
      os.path.dirname(__file__), "..", "..", "examples", "tasks", "hashtags.yaml"))
  assert task.multi_label and task.labels == corpora.hashtag_rows()[0]
