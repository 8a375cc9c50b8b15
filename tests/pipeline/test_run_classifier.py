"""pipeline/run_classifier.py: `bertline run-classifier` with a shell script's flags writes what
Google's run_classifier.py writes — its TFRecords byte for byte (bert-tensorflow's own feature
code is the reference), eval_results.txt and test_results.tsv in its formats, and numbers that
are the trained model's on those very records."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import cli, schema
from bertline.model.model_dir import ModelDir
from bertline.pipeline import run_classifier
from tests.preprocessing import reference
from tests.preprocessing.test_processors import _glue_fixture
from tests.trainer import fixtures

MAX_SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def mrpc(tmp_path_factory):
  """MRPC-layout TSVs (12 real-text pairs per split) and a Google-zip-like MiniLM."""
  root = tmp_path_factory.mktemp("rc")
  _glue_fixture("mrpc", str(root / "MRPC"))
  bert = fixtures.write_google_minilm(str(root / "uncased_L-6_H-384_A-12"))
  return {"data": str(root / "MRPC"), "bert": bert, "root": root}


def _googles_records(mrpc, split, path, pad_to=0):
  rc = reference.reference_run_classifier()
  processor = rc.MrpcProcessor()
  examples = {"train": processor.get_train_examples, "dev": processor.get_dev_examples,
              "test": processor.get_test_examples}[split](mrpc["data"])
  while pad_to and len(examples) % pad_to:
    examples.append(rc.PaddingInputExample())
  tokenizer = reference.reference_tokenization().FullTokenizer(
      os.path.join(mrpc["bert"], "vocab.txt"), do_lower_case=True)
  rc.file_based_convert_examples_to_features(examples, processor.get_labels(), MAX_SEQ_LENGTH,
                                             tokenizer, str(path))
  with open(path, "rb") as f:
    return f.read()


def _model_outputs(output_dir, record_file):
  """The last checkpoint's probabilities and label ids over a run_classifier record file."""
  model = ModelDir(output_dir).load_classifier("latest")
  spec = schema.feature_spec(MAX_SEQ_LENGTH, guid=False)
  probs, labels = [], []
  for raw in tf.data.TFRecordDataset(record_file).batch(64):
    ex = tf.io.parse_example(raw, spec)
    features = {k: tf.cast(ex[k], tf.int32) for k in schema.SEQUENCE_FEATURES}
    probs.append(model(features, training=False)["probabilities"].numpy().astype(np.float64))
    labels.append(ex[schema.LABEL_IDS].numpy()[:, 0])
  return np.concatenate(probs), np.concatenate(labels)


def test_a_run_classifier_script_runs_unchanged_and_writes_its_files(mrpc, tmp_path, capsys):
  out = str(tmp_path / "mrpc_output")
  b = mrpc["bert"]
  # The README's command of google-research/bert, with `python run_classifier.py` replaced.
  rc = cli.main(["run-classifier", "--task_name=MRPC", "--do_train=true", "--do_eval=true",
                 "--do_predict=true", f"--data_dir={mrpc['data']}", f"--vocab_file={b}/vocab.txt",
                 f"--bert_config_file={b}/bert_config.json",
                 f"--init_checkpoint={b}/bert_model.ckpt", f"--max_seq_length={MAX_SEQ_LENGTH}",
                 "--train_batch_size=4", "--eval_batch_size=5", "--predict_batch_size", "5",
                 "--learning_rate=2e-5", "--num_train_epochs=1.0", "--save_checkpoints_steps=2",
                 f"--output_dir={out}"])
  assert rc == 0, capsys.readouterr().err
  for split, name in run_classifier.RECORD_FILES.items():
    with open(os.path.join(out, name), "rb") as f:
      assert f.read() == _googles_records(mrpc, split, tmp_path / f"google-{name}"), name

  # eval_results.txt: run_classifier's `key = value` lines, read back as its users read them.
  with open(os.path.join(out, "eval_results.txt")) as f:
    lines = f.read().splitlines()
  results = dict(line.split(" = ") for line in lines)
  assert list(results) == ["eval_accuracy", "eval_loss", "global_step", "loss"]
  assert int(results["global_step"]) == int(12 / 4 * 1.0)  # run_classifier's num_train_steps
  probs, labels = _model_outputs(out, os.path.join(out, "eval.tf_record"))
  per_example = -np.log(probs[np.arange(len(labels)), labels])
  np.testing.assert_allclose(float(results["eval_accuracy"]),
                             np.mean(probs.argmax(-1) == labels), atol=1e-6)
  np.testing.assert_allclose(float(results["eval_loss"]), per_example.mean(), rtol=1e-5)
  # The Estimator's `loss`: the mean of the eval batches' (of 5) mean losses.
  np.testing.assert_allclose(float(results["loss"]), np.mean(
      [per_example[i:i + 5].mean() for i in range(0, 12, 5)]), rtol=1e-5)

  # test_results.tsv: one line per test example, its class probabilities, in input order.
  with open(os.path.join(out, "test_results.tsv")) as f:
    rows = [[float(x) for x in line.split("\t")] for line in f.read().splitlines()]
  probs, _ = _model_outputs(out, os.path.join(out, "predict.tf_record"))
  assert len(rows) == 12
  np.testing.assert_allclose(rows, probs, atol=1e-6)
  assert ModelDir(out).latest_checkpoint().endswith("ckpt-3")


def test_on_tpu_eval_and_predict_records_are_padded_as_run_classifier_pads_them(mrpc, tmp_path):
  out = str(tmp_path / "features")
  metadata = run_classifier._preprocess(
      run_classifier.config_from_args([
          f"--data_dir={mrpc['data']}", f"--bert_config_file={mrpc['bert']}/bert_config.json",
          "--task_name=mrpc", f"--vocab_file={mrpc['bert']}/vocab.txt", f"--output_dir={out}",
          f"--max_seq_length={MAX_SEQ_LENGTH}"]), "mrpc", ["dev"], out)
  path = str(tmp_path / "eval.tf_record")
  assert run_classifier.write_google_records(out, metadata, "dev", path, pad_to=8) == 16
  with open(path, "rb") as f:
    assert f.read() == _googles_records(mrpc, "dev", tmp_path / "google.tf_record", pad_to=8)


def test_faults_are_named_before_any_work(mrpc, tmp_path, capsys):
  base = [f"--data_dir={mrpc['data']}", f"--bert_config_file={mrpc['bert']}/bert_config.json",
          f"--vocab_file={mrpc['bert']}/vocab.txt", f"--output_dir={tmp_path / 'o'}"]
  assert cli.main(["run-classifier", "--task_name=MRPC"] + base) == 2
  assert "At least one of `do_train`, `do_eval` or `do_predict' must be True" in \
      capsys.readouterr().err
  assert cli.main(["run-classifier", "--task_name=QQP", "--do_train"] + base) == 3
  assert "Task not found: QQP (--task_name)" in capsys.readouterr().err
  assert cli.main(["run-classifier", "--task_name=MRPC", "--do_eval"] + base) == 3
  assert "holds no trained model to evaluate or predict with: add --do_train=true" in \
      capsys.readouterr().err
  assert not os.path.exists(tmp_path / "o" / run_classifier.FEATURES_DIR)
  assert cli.main(["run-classifier", "--task_name=MRPC", "--do_train",
                   "--max_seq_length=1024"] + base) == 3
  assert "Cannot use sequence length 1024" in capsys.readouterr().err
