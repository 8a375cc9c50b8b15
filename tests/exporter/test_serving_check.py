"""The serving check: a real export's warmup requests replayed by a clean process without bertline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bertline.evaluator import blessing as blessing_lib
from bertline.exporter import serving_check


def test_a_real_export_answers_its_warmup_requests_in_a_clean_process(exported):
  result = serving_check.check(exported["path"])
  assert result.passed, result.reason
  assert result.requests == 3
  # The child reports which modules it had: a pass means bertline was not among them.
  assert "(classification, serving_default)" in result.reason
  assert "without bertline" in result.reason


def test_the_clean_process_cannot_import_bertline_though_it_is_installed():
  plain = subprocess.run([sys.executable, "-I", "-c", "import bertline"], capture_output=True,
                         text=True, timeout=60)
  assert plain.returncode == 0, plain.stderr  # installed: the blocker is what keeps it out
  blocked = subprocess.run(
      [sys.executable, "-I", "-c",
       "import importlib.util, sys\n"
       f"spec = importlib.util.spec_from_file_location('probe', {serving_check.PROBE!r})\n"
       "probe = importlib.util.module_from_spec(spec); spec.loader.exec_module(probe)\n"
       "sys.meta_path.insert(0, probe._NoBertline())\n"
       "import bertline.exporter.export\n"],
      capture_output=True, text=True, timeout=60)
  assert blocked.returncode != 0
  assert "may not be imported by the serving check" in blocked.stderr


def _probe_module():
  import importlib.util
  spec = importlib.util.spec_from_file_location("serving_probe", serving_check.PROBE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_tf_servings_rules_for_each_request(exported, tmp_path):
  """The probe's checks, in this process: every failure names the request and the rule."""
  import shutil

  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2

  from bertline import schema
  probe = _probe_module()
  model = tmp_path / "3"
  shutil.copytree(exported["path"], model)
  warmup = model / schema.ASSETS_EXTRA / schema.WARMUP_REQUESTS
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(str(warmup))]

  def replay(*records):
    with tf.io.TFRecordWriter(str(warmup)) as writer:
      for log in records:
        writer.write(log.SerializeToString())
    with pytest.raises(probe.Failed) as failed:
      probe.probe(str(model))
    return str(failed.value)

  def changed(log, edit):
    log = prediction_log_pb2.PredictionLog.FromString(log.SerializeToString())
    edit(log)
    return log

  assert "warmup request 0 (predict, signature 'nope'): the SavedModel has no such signature" in \
      replay(changed(logs[0], lambda g: setattr(g.predict_log.request.model_spec,
                                                 "signature_name", "nope")))
  assert "inputs ['text_b'] != the signature's ['text_a']" in replay(changed(
      logs[0], lambda g: g.predict_log.request.inputs["text_b"].CopyFrom(
          g.predict_log.request.inputs.pop("text_a"))))
  assert "signature method is tensorflow/serving/classify, not tensorflow/serving/predict" in \
      replay(changed(logs[0], lambda g: setattr(g.predict_log.request.model_spec,
                                                 "signature_name", schema.SIGNATURE_CLASSIFY)))
  assert "holds no requests" in replay()
  assert "no examples" in replay(changed(logs[2], lambda g: g.classify_log.request.input.
                                         example_list.ClearField("examples")))


def _evaluation(blessed: bool):
  return blessing_lib.decide({"eval_accuracy": 0.9 if blessed else 0.1}, {"eval_accuracy": 0.5})


def test_the_outcome_is_one_check_of_the_exports_blessing(tmp_path):
  version = tmp_path / "7"
  version.mkdir()
  passed = serving_check.CheckResult(True, "3 warmup requests answered", 3, 9.5)
  failed = serving_check.CheckResult(False, "the SavedModel does not load (DataLossError: x)")
  path = serving_check.record(str(version), passed, _evaluation(True))
  written = blessing_lib.read(path)
  assert written["blessed"] is True
  assert written["reasons"][-1] == "PASS serving: 3 warmup requests answered"
  assert "seconds" not in written["serving_check"]  # a re-check writes the same bytes
  before = open(path, "rb").read()
  serving_check.record(str(version), passed, _evaluation(True) | {"created": written["created"]})
  assert open(path, "rb").read() == before
  # A failure unblesses, replacing the earlier serving entry rather than adding one.
  written = blessing_lib.read(serving_check.record(str(version), failed, written))
  assert written["blessed"] is False
  assert [c["metric"] for c in written["checks"]] == ["eval_accuracy", "serving"]
  assert written["reasons"][-1].startswith("FAIL serving: the SavedModel does not load")
  # An unblessed evaluation stays unblessed; no evaluation at all is never blessed.
  assert blessing_lib.read(serving_check.record(str(version), passed, _evaluation(False)))[
      "blessed"] is False
  alone = blessing_lib.read(serving_check.record(str(version), passed, None))
  assert alone["blessed"] is False and alone["reasons"][0].startswith("FAIL no evaluation")


@pytest.mark.parametrize("ids,vocab,text", [
    ([101, 7592, 2088, 102], {101: "[CLS]", 7592: "hello", 2088: "world", 102: "[SEP]"},
     "hello world"),
    ([1, 2, 3], {1: "play", 2: "##ing", 3: "[UNK]"}, "playing"),
    ([4, 5], {4: "##x", 5: "y"}, "x y"),  # a leading piece stands alone
])
def test_wordpiece_ids_decode_to_the_words(ids, vocab, text):
  table = [""] * (max(vocab) + 1)
  for i, token in vocab.items():
    table[i] = token
  assert serving_check._detokenize(ids, table) == text
