"""`bertline export --quantize`: a TF Lite classifier beside the export's own
tokenizer, that predict, score, evaluate and push's serving check read, and
that answers like the float32 export it was made from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.evaluator import predict, scoring
from bertline.evaluator.config import PredictConfig
from bertline.exporter import export, push, quantize, serving_check
from tests.records import read_split

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _size(path):
  return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(path) for n in names)


@pytest.fixture(scope="module")
def quantized(tiny_model, tmp_path_factory):
  export_dir = str(tmp_path_factory.mktemp("quantized"))
  # int8 through the CLI flag; float16 in-process (the same function, one start-up fewer).
  proc = subprocess.run(
      [sys.executable, "-m", "bertline", "export", "--model-dir", tiny_model["model_dir"],
       "--export-dir", export_dir, "--version", "5", "--quantize", "int8"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == f"export: {os.path.join(export_dir, '5')}"
  return {"int8": os.path.join(export_dir, "5"),
          "float16": export.export_model(tiny_model["model_dir"], export_dir, version=6,
                                         quantize="float16")}


def test_layout_metadata_and_size(quantized, exported):
  for mode, path in quantized.items():
    names = sorted(os.listdir(path))
    assert names == sorted([schema.TFLITE_FILE, quantize.TOKENIZER_DIR, "assets",
                            schema.ASSETS_EXTRA]), names
    assert not scoring.is_saved_model(path) and quantize.is_tflite(path)
    assert scoring.is_export(path)
    with open(os.path.join(path, "assets", schema.ASSET_METADATA)) as f:
      meta = json.load(f)
    q = meta["quantization"]
    assert q["mode"] == mode and q["examples"] == 8 and q["same_label"] == 1.0
    assert q["max_abs_probability_diff"] < (0.02 if mode == "int8" else 1e-3)
    assert sorted(meta["signatures"]) == [schema.SIGNATURE_FEATURES, schema.SIGNATURE_TEXT]
  # The tiny model's weights are mostly its 30522 x 32 embeddings: int8 stores them in a
  # quarter of the bytes, float16 in half.
  tflite = {m: os.path.getsize(os.path.join(p, schema.TFLITE_FILE)) for m, p in quantized.items()}
  variables = _size(os.path.join(exported["path"], "variables"))
  assert tflite["int8"] < 0.3 * variables, (tflite, variables)
  assert 0.4 * variables < tflite["float16"] < 0.6 * variables, (tflite, variables)


def test_serves_raw_text_and_features_like_the_float_export(quantized, exported, tweets_data):
  loaded = tf.saved_model.load(exported["path"])
  records = read_split(tweets_data["data"], "dev")
  guids = sorted(records, key=scoring.guid_sort_key)[:48]
  feats = {k: np.stack([records[g][1][k] for g in guids]).astype(np.int32)
           for k in schema.SEQUENCE_FEATURES}
  want = loaded.signatures[schema.SIGNATURE_FEATURES](
      **{k: tf.constant(v) for k, v in feats.items()})[schema.OUTPUT_PROBABILITIES].numpy()
  texts = ["what a great phone", "worst service ever", "", "東京 is nice 😀"]
  want_text = loaded.signatures[schema.SIGNATURE_TEXT](text_a=tf.constant(texts))
  for mode, path in quantized.items():
    model = quantize.TFLiteModel(path)
    got = model.signatures[schema.SIGNATURE_FEATURES](**feats)
    tol = 0.02 if mode == "int8" else 1e-3
    np.testing.assert_allclose(got[schema.OUTPUT_PROBABILITIES], want, atol=tol)
    np.testing.assert_allclose(got[schema.OUTPUT_PROBABILITIES].sum(-1), 1.0, atol=1e-5)
    out = model.signatures[schema.SIGNATURE_TEXT](text_a=texts)
    np.testing.assert_allclose(out[schema.OUTPUT_PROBABILITIES],
                               want_text[schema.OUTPUT_PROBABILITIES].numpy(), atol=tol)
    labels = [x.decode() for x in out[schema.OUTPUT_LABEL]]
    assert labels == [model.labels[i] for i in out[schema.OUTPUT_LABEL_ID]]
    # The tokenizer SavedModel is the export's own: the preprocess stage's ids.
    tok = tf.saved_model.load(os.path.join(path, quantize.TOKENIZER_DIR))
    ids = tok.signatures[quantize.TOKENIZER_SIGNATURE](
        text_a=tf.constant([b"what a great phone"]))[schema.INPUT_IDS].numpy()
    ref = loaded.text_to_features(tf.constant([b"what a great phone"]))[schema.INPUT_IDS].numpy()
    np.testing.assert_array_equal(ids, ref)


def test_predict_on_a_quantized_version(quantized, exported, tweets_data, tmp_path):
  out_float = predict.run(PredictConfig(exported["path"], tweets_data["data"], "dev",
                                        str(tmp_path / "f.tsv")))
  out_int8 = predict.run(PredictConfig(quantized["int8"], tweets_data["data"], "dev",
                                       str(tmp_path / "q.tsv")))
  f = np.loadtxt(out_float, delimiter="\t")
  q = np.loadtxt(out_int8, delimiter="\t")
  assert f.shape == q.shape and f.shape[0] == schema.read_metadata(
      tweets_data["data"]).splits["dev"].num_examples
  np.testing.assert_allclose(q, f, atol=0.02)


def test_push_checks_and_publishes_a_quantized_version(quantized, tmp_path):
  result = serving_check.check(quantized["int8"])
  assert result.passed, result.reason
  assert result.requests == 2 and schema.TFLITE_FILE in result.reason
  dest = push.push(quantized["int8"], str(tmp_path / "registry"), force=True)
  for name in (schema.TFLITE_FILE, schema.PUSH_COMPLETE_MARKER):
    assert os.path.isfile(os.path.join(dest, name)), name
  with open(os.path.join(dest, schema.TFLITE_FILE), "rb") as a, open(
      os.path.join(quantized["int8"], schema.TFLITE_FILE), "rb") as b:
    assert a.read() == b.read()
  # The pushed copy is a working version: predict's loader reads it.
  assert quantize.TFLiteModel(dest).serve_text(["fine"])[schema.OUTPUT_PROBABILITIES].shape == (1, 3)
  record = push.read_push_record(dest)
  assert record["serving_check"]["status"] == "passed"
  # The last file pushed is the one that makes it an export, as saved_model.pb is.
  assert push._source_files(quantized["int8"])[-1] == schema.TFLITE_FILE


def test_a_broken_tflite_fails_the_serving_check(quantized, tmp_path):
  import shutil
  broken = str(tmp_path / "7")
  shutil.copytree(quantized["int8"], broken)
  path = os.path.join(broken, schema.TFLITE_FILE)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  result = serving_check.check(broken)
  assert not result.passed and "does not load" in result.reason, result.reason


def test_vertex_registration_of_a_quantized_version_is_refused(quantized):
  from bertline.exporter import vertex_registry
  vertex = vertex_registry.VertexModel(model_id="m", project="p", region="us-central1")
  with pytest.raises(ValueError, match="quantized export"):
    push.push(quantized["int8"], "gs://models/m", force=True, vertex=vertex)


def test_bad_mode_is_one_line(tiny_model, tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "bertline", "export", "--model-dir", tiny_model["model_dir"],
       "--export-dir", str(tmp_path), "--quantize", "int4"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "--quantize" in proc.stderr and "int4" in proc.stderr
  # The library call is checked by ExportConfig too, named as the flag.
  with pytest.raises(ValueError, match="--quantize: 'int4' is not one of"):
    export.export_model(tiny_model["model_dir"], str(tmp_path), quantize="int4")


def _partitions(items):
  """Every set partition of `items` (a list), as lists of lists."""
  if not items:
    yield []
    return
  first, rest = items[0], items[1:]
  for part in _partitions(rest):
    for i in range(len(part)):
      yield part[:i] + [[first] + part[i]] + part[i + 1:]
    yield [[first]] + part


@pytest.mark.parametrize("seed", range(6))
def test_length_groups_are_the_cheapest_split(seed):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, 64, size=7)
  overhead = int(rng.integers(0, 40))
  groups = quantize.length_groups(lengths, overhead)
  assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))

  def cost(split):
    return sum(len(g) * int(lengths[g].max()) + overhead for g in split)

  # Against every way of splitting the rows, not only runs of the sorted order.
  best = min(cost([np.array(g) for g in p]) for p in _partitions(list(range(len(lengths)))))
  assert cost(groups) == best
  # One group when a call costs more than all the padding; one per length when it is free.
  assert len(quantize.length_groups(lengths, 10**6)) == 1
  assert len(quantize.length_groups(lengths, 0)) == len(set(lengths.tolist()))
  assert quantize.length_groups(np.zeros(0, np.int32)) == []


def test_length_groups_answer_like_one_padded_batch(quantized, tweets_data):
  records = read_split(tweets_data["data"], "dev")
  guids = sorted(records, key=scoring.guid_sort_key)[:48]
  feats = {k: np.stack([records[g][1][k] for g in guids]).astype(np.int32)
           for k in schema.SEQUENCE_FEATURES}
  lengths = feats[schema.INPUT_MASK].sum(-1)
  assert len(set(lengths.tolist())) > 5, lengths  # or there would be nothing to group
  model = quantize.TFLiteModel(quantized["int8"])
  model.group_overhead_tokens = 10**6
  whole = model.serve_features(**feats)
  model.group_overhead_tokens = 0
  assert len(quantize.length_groups(lengths, 0)) > 5
  grouped = model.serve_features(**feats)
  # The int8 kernels quantize each token's activations on their own, and the mask hides
  # the padding: the same answers but for float summation order.
  np.testing.assert_allclose(grouped[schema.OUTPUT_PROBABILITIES],
                             whole[schema.OUTPUT_PROBABILITIES], atol=1e-5)
  np.testing.assert_array_equal(grouped[schema.OUTPUT_LABEL_ID], whole[schema.OUTPUT_LABEL_ID])
  np.testing.assert_array_equal(grouped[schema.OUTPUT_LABEL], whole[schema.OUTPUT_LABEL])
  empty = model.serve_features(**{k: v[:0] for k, v in feats.items()})
  assert empty[schema.OUTPUT_PROBABILITIES].shape[0] == 0
