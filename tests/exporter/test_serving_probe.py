"""exporter/serving_probe.py: the clean process that replays an export's warmup requests by
TF Serving's rules, with bertline kept out of reach."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from bertline import schema
from bertline.exporter import serving_check


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
  spec = importlib.util.spec_from_file_location("serving_probe", serving_check.PROBE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_tf_servings_rules_for_each_request(exported, tmp_path):
  """The probe's checks, in this process: every failure names the request and the rule."""
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
