"""The exported SavedModel: signatures that agree (TF Serving's Classify API
among them), the preprocess stage's ids from raw text, warmup requests from
real examples, and loading with no bertline code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bertline import fileio, schema
from bertline.evaluator import scoring
from bertline.exporter import export, push
from tests.conftest import make_model_dir
from tests.records import read_split

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _raw_texts(tsv_dir, split):
  """guid -> raw text bytes of a tweets TSV (guid <split>-<line index>, header is line 0)."""
  with open(os.path.join(tsv_dir, f"{split}.tsv"), "rb") as f:
    lines = f.read().split(b"\n")
  return {f"{split}-{i}": line.split(b"\t", 1)[1] for i, line in enumerate(lines)
          if i > 0 and line}


def test_layout_assets_and_refusals(exported, tiny_model, tweets_data):
  path = exported["path"]
  assert os.path.basename(path) == "3"
  assert os.listdir(exported["export_dir"]) == ["3"]  # no temporary left behind
  assets = os.path.join(path, "assets")
  with open(os.path.join(assets, schema.ASSET_LABELS)) as f:
    assert f.read().splitlines() == ["negative", "neutral", "positive"]
  with open(os.path.join(assets, schema.ASSET_VOCAB), "rb") as f1, open(
      os.path.join(tiny_model["model_dir"], schema.VOCAB_FILE), "rb") as f2:
    assert f1.read() == f2.read()
  with open(os.path.join(assets, schema.ASSET_METADATA)) as f:
    meta = json.load(f)
  assert meta["data_metadata"] == schema.read_metadata(tweets_data["data"]).to_dict()
  assert meta["train_config"] == {"learning_rate": 5e-5, "seed": 0,
                                  "data_dir": tweets_data["data"]}
  assert meta["model_config"]["hidden_size"] == 32 and meta["version"] == 3
  with pytest.raises(FileExistsError, match="version 3 was already exported"):
    export.export_model(tiny_model["model_dir"], exported["export_dir"], version=3)


def test_three_signatures_agree_with_each_other_and_keras(exported, tiny_model, tweets_data):
  loaded = tf.saved_model.load(exported["path"])
  texts = _raw_texts(tweets_data["tsv"], "dev")
  records = read_split(tweets_data["data"], "dev")
  guids = sorted(records, key=scoring.guid_sort_key)[:64]
  by_text = loaded.signatures[schema.SIGNATURE_TEXT](
      text_a=tf.constant([texts[g] for g in guids]))
  by_example = loaded.signatures[schema.SIGNATURE_EXAMPLES](
      examples=tf.constant([records[g][0] for g in guids]))
  feats = {k: tf.constant(np.stack([records[g][1][k] for g in guids]), tf.int32)
           for k in schema.SEQUENCE_FEATURES}
  by_features = loaded.signatures[schema.SIGNATURE_FEATURES](**feats)
  keras_probs = tiny_model["model"](feats, training=False)["probabilities"].numpy()
  for out in (by_example, by_features):
    np.testing.assert_allclose(out["probabilities"].numpy(), by_text["probabilities"].numpy(),
                               atol=1e-5)
    np.testing.assert_array_equal(out["label_id"].numpy(), by_text["label_id"].numpy())
  np.testing.assert_allclose(by_text["probabilities"].numpy(), keras_probs, atol=1e-5)
  labels = np.array([b"negative", b"neutral", b"positive"])
  np.testing.assert_array_equal(by_text["label"].numpy(), labels[keras_probs.argmax(-1)])
  # A batch of one, and padding to max_seq_length, change nothing.
  one = loaded.signatures[schema.SIGNATURE_TEXT](text_a=tf.constant([texts[guids[5]]]))
  np.testing.assert_allclose(one["probabilities"].numpy()[0], keras_probs[5], atol=1e-5)


_LOAD_WITHOUT_BERTLINE = textwrap.dedent("""
    import json, sys

    class NoBertline:
      # Makes bertline unimportable: the SavedModel must not need it.
      def find_spec(self, name, path=None, target=None):
        if name == "bertline" or name.startswith("bertline."):
          raise ImportError("bertline must not be needed to load the export")

    sys.meta_path.insert(0, NoBertline())
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry
    path, texts_file, out_file = sys.argv[1:]
    # Which of the graph's ops does plain TensorFlow not register?
    ops = json.loads(open(texts_file + ".ops").read())
    not_core = sorted(op for op in ops if op_def_registry.get(op) is None)
    import tensorflow_text  # noqa: F401
    still_missing = sorted(op for op in not_core if op_def_registry.get(op) is None)
    texts = [bytes.fromhex(t) for t in json.loads(open(texts_file).read())]
    loaded = tf.saved_model.load(path)
    feats = loaded.text_to_features(tf.constant(texts))
    probs = loaded.signatures["serving_default"](text_a=tf.constant(texts))["probabilities"]
    np.savez(out_file, probabilities=probs.numpy(), **{k: v.numpy() for k, v in feats.items()})
    print(json.dumps({"not_core": not_core, "still_missing": still_missing,
                      "bertline_modules": sorted(m for m in sys.modules if m.split(".")[0] == "bertline")}))
""")


def test_loads_without_bertline_and_tokenizes_like_preprocess(exported, tweets_data, tmp_path):
  guid_texts = {}
  records = {}
  for split in ("dev", "test"):
    guid_texts.update(_raw_texts(tweets_data["tsv"], split))
    records.update(read_split(tweets_data["data"], split))
  guids = sorted(records, key=scoring.guid_sort_key)
  texts_file = tmp_path / "texts.json"
  texts_file.write_text(json.dumps([guid_texts[g].hex() for g in guids]))
  (tmp_path / "texts.json.ops").write_text(json.dumps(export.graph_op_names(exported["path"])))
  out_file = str(tmp_path / "out.npz")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_BERTLINE, exported["path"],
                           str(texts_file), out_file], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["bertline_modules"] == []
  # Only tensorflow-text ops beyond core TensorFlow, and only the known ones.
  assert report["still_missing"] == []
  assert set(report["not_core"]) <= set(export.TF_TEXT_OPS), report["not_core"]
  got = np.load(out_file)
  for i, guid in enumerate(guids):  # the preprocess stage's ids, for every real tweet
    for name in schema.SEQUENCE_FEATURES:
      np.testing.assert_array_equal(got[name][i], records[guid][1][name], err_msg=f"{guid} {name}")
  assert got["probabilities"].shape == (len(guids), 3)


def test_export_then_push_to_a_local_registry(exported, tmp_path):
  with pytest.raises(FileNotFoundError, match="No blessing"):
    push.push(exported["path"], str(tmp_path / "registry"))
  dest = push.push(exported["path"], str(tmp_path / "registry"), force=True)
  loaded = tf.saved_model.load(dest)
  out = loaded.signatures[schema.SIGNATURE_TEXT](text_a=tf.constant(["great day"]))
  assert out["probabilities"].shape == (1, 3)


def test_model_dir_without_checkpoint_is_a_clear_error(tweets_data, tmp_path):
  model_dir = str(tmp_path / "untrained")
  make_model_dir(model_dir, tweets_data["data"], with_checkpoint=False)
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    export.export_model(model_dir, str(tmp_path / "e"))
  assert not os.path.exists(tmp_path / "e" / "1")


def test_sentence_pairs_match_run_classifier_features(tmp_path):
  """A pair task's raw-text signature takes text_a and text_b and packs them
  exactly as run_classifier.convert_single_example does (truncating the longer)."""
  from bertline import corpora
  from tests.conftest import VOCAB
  from tests.preprocessing import reference

  metadata = schema.DataMetadata(
      task="review_pairs", labels=["0", "1"], splits={}, max_seq_length=40, do_lower_case=True,
      vocab_sha256=fileio.sha256_file(VOCAB), has_text_b=True)
  model_dir = str(tmp_path / "pairs")
  model = make_model_dir(model_dir, None, seed=3, metadata=metadata)
  reviews = [text for _, text in corpora.read_chinese_reviews(limit_per_class=24)]
  tweets = [text.decode("utf-8", "ignore") for _, text in corpora.read_tweets(limit=48)]
  pairs = list(zip(reviews, tweets))
  # The warmup requests come from a preprocess output of the pair task (the
  # model_dir records no training data here).
  with pytest.raises(FileNotFoundError, match="--warmup-data DIR"):
    export.export_model(model_dir, str(tmp_path / "e"), version=1)
  warmup = _preprocess_pairs(tmp_path, pairs)
  path = export.export_model(model_dir, str(tmp_path / "e"), version=1, warmup_data=warmup)
  rc = reference.reference_run_classifier()
  tok = reference.reference_tokenization().FullTokenizer(VOCAB, do_lower_case=True)
  want = [rc.convert_single_example(i, rc.InputExample(str(i), a, b, "0"), ["0", "1"], 40, tok)
          for i, (a, b) in enumerate(pairs)]

  loaded = tf.saved_model.load(path)
  text_a = tf.constant([a for a, _ in pairs])
  text_b = tf.constant([b for _, b in pairs])
  feats = loaded.text_to_features(text_a=text_a, text_b=text_b)
  for name in schema.SEQUENCE_FEATURES:
    np.testing.assert_array_equal(feats[name].numpy(), np.array([getattr(w, name) for w in want]))
  assert any(sum(w.input_mask) == 40 for w in want)  # truncation was exercised
  by_text = loaded.signatures[schema.SIGNATURE_TEXT](text_a=text_a, text_b=text_b)
  ref_feats = {n: tf.constant([getattr(w, n) for w in want], tf.int32)
               for n in schema.SEQUENCE_FEATURES}
  by_features = loaded.signatures[schema.SIGNATURE_FEATURES](**ref_feats)
  np.testing.assert_allclose(by_text["probabilities"].numpy(), by_features["probabilities"].numpy(),
                             atol=1e-5)
  np.testing.assert_allclose(by_text["probabilities"].numpy(),
                             model(ref_feats, training=False)["probabilities"].numpy(), atol=1e-5)
  with open(os.path.join(path, "assets", schema.ASSET_METADATA)) as f:
    assert json.load(f)["signatures"][schema.SIGNATURE_TEXT]["inputs"] == ["text_a", "text_b"]
  # Pairs travel as pairs in the warmup requests and through the Classify API.
  logs = _warmup_logs(path)
  predict = logs[0].predict_log.request
  assert sorted(predict.inputs) == ["text_a", "text_b"]
  examples = [e.SerializeToString() for e in logs[2].classify_log.request.input.example_list.examples]
  by_classify = loaded.signatures[schema.SIGNATURE_CLASSIFY](inputs=tf.constant(examples))
  by_predict = loaded.signatures[schema.SIGNATURE_TEXT](
      **{k: tf.constant(tf.make_ndarray(v)) for k, v in predict.inputs.items()})
  np.testing.assert_allclose(by_classify["scores"].numpy(), by_predict["probabilities"].numpy(),
                             atol=1e-6)


def _preprocess_pairs(tmp_path, pairs):
  """A pair task's preprocess output (examples/tasks/reviews_pairs.yaml's layout)."""
  from bertline.preprocessing import beam_job
  from tests.conftest import VOCAB
  tsv = tmp_path / "pairs_tsv"
  tsv.mkdir()
  clean = [(a.replace("\t", " ").replace("\n", " "), b.replace("\t", " ").replace("\n", " "))
           for a, b in pairs]
  for split in ("train", "dev", "test"):
    (tsv / f"{split}.tsv").write_text("".join(f"{i}\t{a}\t{b}\t{i % 2}\n"
                                              for i, (a, b) in enumerate(clean)), encoding="utf-8")
  out = str(tmp_path / "pairs_data")
  beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(ROOT, "examples", "tasks", "reviews_pairs.yaml"),
                "--data-dir", str(tsv), "--vocab-file", VOCAB, "--max-seq-length", "40",
                "--output-dir", out, "--num-shards", "1"]))
  return out


def _warmup_logs(path):
  from tensorflow_serving.apis import prediction_log_pb2
  file = os.path.join(path, schema.ASSETS_EXTRA, schema.WARMUP_REQUESTS)
  return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(file)]


def test_warmup_requests_carry_real_examples_of_the_training_data(exported, tweets_data):
  """TF Serving's warmup file: a batched and a single predict request and a classify
  request, all over the dev split's first rows decoded from their ids."""
  from bertline.preprocessing.tokenization import BertTokenizer
  from tests.conftest import VOCAB
  logs = _warmup_logs(exported["path"])
  assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log",
                                                          "classify_log"]
  batched, single = (log.predict_log.request for log in logs[:2])
  assert batched.model_spec.signature_name == single.model_spec.signature_name == "serving_default"
  texts = [t.decode() for t in tf.make_ndarray(batched.inputs["text_a"])]
  assert len(texts) == 8 and [t.decode() for t in tf.make_ndarray(single.inputs["text_a"])] == texts[:1]
  classify = logs[2].classify_log.request
  assert classify.model_spec.signature_name == schema.SIGNATURE_CLASSIFY
  assert [e.features.feature["text_a"].bytes_list.value[0].decode()
          for e in classify.input.example_list.examples] == texts
  # The texts are the dev split's first records: tokenized again, they give those ids.
  meta = schema.read_metadata(tweets_data["data"])
  files = meta.split_files(tweets_data["data"], "dev")
  spec = schema.feature_spec(meta.max_seq_length, labels=False, guid=False)
  first = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(files).take(8)]
  tokenizer = BertTokenizer(VOCAB, True)
  ids = tokenizer.tokenize(tf.constant(texts))
  unk = tokenizer.unk_id  # [UNK] pieces are dropped from the decoded text
  for got, ex in zip(ids.to_list(), first):
    want = ex["input_ids"].numpy()[ex["input_mask"].numpy().astype(bool)][1:-1]
    assert got == [i for i in want.tolist() if i != unk]


def test_classification_signature_is_tf_servings_classify(exported, tweets_data):
  from tensorflow.core.protobuf import saved_model_pb2
  from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
  from bertline.exporter import serving_check
  sm = saved_model_pb2.SavedModel()
  with open(os.path.join(exported["path"], "saved_model.pb"), "rb") as f:
    sm.ParseFromString(f.read())
  defs = sm.meta_graphs[0].signature_def
  sig = defs[schema.SIGNATURE_CLASSIFY]
  assert sig.method_name == "tensorflow/serving/classify"
  assert list(sig.inputs) == ["inputs"] and sig.inputs["inputs"].dtype == tf.string.as_datatype_enum
  assert sig.outputs["classes"].dtype == tf.string.as_datatype_enum
  assert sig.outputs["scores"].dtype == tf.float32.as_datatype_enum
  # The others stay predict (__saved_model_init_op is TensorFlow's own, not a signature).
  assert {defs[k].method_name for k in defs
          if k != schema.SIGNATURE_CLASSIFY and not k.startswith("__")} == {
      "tensorflow/serving/predict"}
  # fingerprint.pb was written again for the edited saved_model.pb.
  from tensorflow.core.protobuf import fingerprint_pb2
  written = fingerprint_pb2.FingerprintDef.FromString(
      open(os.path.join(exported["path"], "fingerprint.pb"), "rb").read())
  fresh = fingerprint_pb2.FingerprintDef.FromString(
      fingerprinting.CreateFingerprintDef(exported["path"]))
  assert written.saved_model_checksum == fresh.saved_model_checksum
  # Scores are serving_default's probabilities; classes the label names, per row.
  loaded = tf.saved_model.load(exported["path"])
  texts = list(_raw_texts(tweets_data["tsv"], "dev").values())[:16]
  examples = [serving_check.text_example(t.decode("utf-8", "ignore"), None).SerializeToString()
              for t in texts]
  out = loaded.signatures[schema.SIGNATURE_CLASSIFY](inputs=tf.constant(examples))
  want = loaded.signatures[schema.SIGNATURE_TEXT](
      text_a=tf.constant([t.decode("utf-8", "ignore") for t in texts]))["probabilities"]
  np.testing.assert_allclose(out["scores"].numpy(), want.numpy(), atol=1e-6)
  assert out["classes"].numpy().tolist() == [[b"negative", b"neutral", b"positive"]] * 16
  empty = tf.train.Example().SerializeToString()  # no text_a: the client gets an error
  with pytest.raises(tf.errors.InvalidArgumentError, match="text_a"):
    loaded.signatures[schema.SIGNATURE_CLASSIFY](inputs=tf.constant([empty]))


@pytest.mark.slow
def test_graph_ids_equal_preprocess_on_the_whole_tweet_corpus(tmp_path):
  """Every one of the ~38,000 real tweets (invalid UTF-8 included): the served
  model's ids are the preprocess stage's."""
  from bertline import corpora
  from bertline.preprocessing import beam_job
  from tests.conftest import VOCAB

  tsv, data = str(tmp_path / "tsv"), str(tmp_path / "data")
  corpora.write_tweets_tsv(tsv, dev_fraction=0.0, test_fraction=0.0)
  beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE), "--data-dir", tsv,
                "--vocab-file", VOCAB, "--max-seq-length", "128", "--output-dir", data,
                "--splits", "train"]))
  model_dir = str(tmp_path / "model")
  make_model_dir(model_dir, data)
  loaded = tf.saved_model.load(export.export_model(model_dir, str(tmp_path / "e")))
  texts = _raw_texts(tsv, "train")
  records = read_split(data, "train")
  assert len(records) == len(texts) > 35000
  guids = sorted(records, key=scoring.guid_sort_key)
  for start in range(0, len(guids), 2048):
    chunk = guids[start:start + 2048]
    feats = loaded.text_to_features(tf.constant([texts[g] for g in chunk]))
    for name in schema.SEQUENCE_FEATURES:
      np.testing.assert_array_equal(feats[name].numpy(),
                                    np.stack([records[g][1][name] for g in chunk]), err_msg=name)
