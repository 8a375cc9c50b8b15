"""A version that would not serve is never pushed: the fault is named, and kept in its blessing.

Each case breaks a real export the way a disk, a copy or a hand edit would —
a truncated variables file, warmup requests gone or naming what the model
lacks, a clean process too slow — and pushes it through the real CLI.
"""

import json
import os
import shutil

import pytest

from bertline import errors, schema
from tests.reliability.conftest import bertline, last_line

WARMUP = os.path.join(schema.ASSETS_EXTRA, schema.WARMUP_REQUESTS)


def _copy(exported, tmp_path, name="3"):
  model = tmp_path / "export" / name
  shutil.copytree(exported["path"], model)
  return model


def _blessing(model):
  with open(model / schema.ASSETS_EXTRA / schema.BLESSING_FILE) as f:
    return json.load(f)


def _refused(model, tmp_path, *flags):
  registry = tmp_path / "registry"
  result = bertline("push", "--model", str(model), "--to", str(registry), "--force", *flags)
  assert result.returncode == errors.BAD_INPUT, result.stderr
  line = last_line(result)
  assert "Traceback" not in result.stderr
  assert f"{model} was not pushed: it failed the serving check" in line
  assert not os.path.exists(registry / model.name)  # nothing published
  blessing = _blessing(model)
  assert blessing["blessed"] is False and blessing["reasons"][-1].startswith("FAIL serving:")
  return line


def _rewrite_warmup(model, logs):
  import tensorflow as tf
  with tf.io.TFRecordWriter(str(model / WARMUP)) as writer:
    for log in logs:
      writer.write(log.SerializeToString())


def test_truncated_variables_are_refused_naming_the_load_failure(exported, tmp_path):
  model = _copy(exported, tmp_path)
  data = model / "variables" / "variables.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
  line = _refused(model, tmp_path)
  assert "the SavedModel does not load" in line or "replaying" in line


def test_missing_warmup_requests_are_refused_naming_the_file(exported, tmp_path):
  model = _copy(exported, tmp_path)
  os.remove(model / WARMUP)
  assert f"{WARMUP} is missing" in _refused(model, tmp_path)


def test_requests_the_model_cannot_answer_are_refused(exported, tmp_path):
  """A classify request sent to a predict signature, or to one the model lacks, fails as in TF
  Serving (its classifier insists on method tensorflow/serving/classify)."""
  from tensorflow_serving.apis import prediction_log_pb2
  model = _copy(exported, tmp_path)
  import tensorflow as tf
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(str(model / WARMUP))]
  classify = logs[2]
  classify.classify_log.request.model_spec.signature_name = schema.SIGNATURE_TEXT
  _rewrite_warmup(model, [logs[0], classify])
  assert "warmup request 1 (classify, signature 'serving_default'): TF Serving's Classify API " \
         "needs method tensorflow/serving/classify" in _refused(model, tmp_path)


def test_a_clean_process_that_does_not_answer_in_time_is_a_failure(exported, tmp_path):
  model = _copy(exported, tmp_path)
  line = _refused(model, tmp_path, "--serving-timeout", "0.5")
  assert "did not answer within 0.5 s" in line


def test_skipping_the_check_is_recorded_in_the_push_record(exported, tmp_path):
  model = _copy(exported, tmp_path)
  os.remove(model / WARMUP)  # would fail the check
  registry = tmp_path / "registry"
  result = bertline("push", "--model", str(model), "--to", str(registry), "--force",
                    "--skip-serving-check")
  assert result.returncode == 0, result.stderr
  assert "Serving check skipped" in result.stderr
  with open(registry / "3" / schema.PUSH_COMPLETE_MARKER) as f:
    assert json.load(f)["serving_check"] == {"status": "skipped"}


@pytest.mark.parametrize("flags,message", [
    (["--serving-timeout", "0"], "--serving-timeout 0 must be positive"),
    (["--vertex-model", "m", "--project", "p", "--region", "r"],
     "--vertex-model needs --to in Cloud Storage (gs://BUCKET/models/NAME)"),
    (["--project", "p"], "--project and --region go with --vertex-model"),
    (["--vertex-model", "9lives", "--project", "p", "--region", "r"],
     "a Vertex AI model ID is 1-63 of"),
])
def test_bad_push_flags_are_one_line_before_any_work(exported, tmp_path, flags, message, capsys):
  from bertline import cli
  assert cli.main(["push", "--model", exported["path"], "--to", str(tmp_path / "r"), "--force",
                   *flags]) == errors.BAD_INPUT
  err = capsys.readouterr().err
  assert message in err.strip().splitlines()[-1] and "Traceback" not in err
  assert not os.path.exists(tmp_path / "r")
