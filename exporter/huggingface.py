"""`bertline export --format huggingface`: a model_dir as a transformers directory.

config.json + model.safetensors + vocab.txt, loadable by transformers'
from_pretrained: a `bertline pretrain` model_dir becomes BertForPreTraining
(BertForMaskedLM when it has no pair head; either class loads it), a
fine-tuned classifier BertForSequenceClassification with its labels. The
weights are the checkpoint's own (best, else latest), renamed by the inverse
of the reader's table (model/checkpoints/huggingface.py), which checks itself
name for name. The directory is written beside its destination and renamed
into place: it is whole or absent. BERT only: ALBERT is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid

import numpy as np
from safetensors.numpy import save_file

from bertline import fileio, schema
from bertline.model import checkpoints, modeling, pretrainer
from bertline.model.checkpoints import huggingface
from bertline.model.model_dir import ModelDir

log = logging.getLogger("bertline.export")

WEIGHTS_FILE = "model.safetensors"


def _architecture(names) -> str:
  if modeling.HEAD_KERNEL in names:
    return "BertForSequenceClassification"
  if pretrainer.MLM_OUTPUT_BIAS in names:
    return "BertForPreTraining" if pretrainer.PAIR_WEIGHTS in names else "BertForMaskedLM"
  return "BertModel"


def export(model_dir: str, export_dir: str) -> str:
  """Writes `model_dir`'s model as a Hugging Face directory at `export_dir`; returns it.

  Raises:
    FileExistsError: export_dir exists and is not empty (a directory is never mixed).
    ValueError: the model is an ALBERT.
  """
  if fileio.is_remote(export_dir):
    raise ValueError(f"--export-dir {export_dir}: a Hugging Face directory is written locally; "
                     "copy it up afterwards (gsutil -m cp -r).")
  if os.path.isdir(export_dir) and os.listdir(export_dir):
    raise FileExistsError(f"--export-dir {export_dir} is not empty: give a new directory (an "
                          "export never writes into another's).")
  files = checkpoints.resolve_pretrained(model_dir)
  config = files.model_config()
  if config.is_albert:
    raise ValueError(f"{model_dir} is an ALBERT: the Hugging Face export writes BERT models "
                     "only.")
  tensors = checkpoints.read_canonical(files)
  weights = {}
  for name in tensors.shapes:
    hf, transpose = huggingface.hf_name(name)
    array = np.asarray(tensors.loaders[name](), dtype=np.float32)
    weights[hf] = np.ascontiguousarray(array.T if transpose else array)
  architecture = _architecture(tensors.shapes)
  hf_config = {**config.to_dict(), "model_type": "bert", "architectures": [architecture]}
  md = ModelDir(model_dir)
  if architecture == "BertForSequenceClassification":
    labels = md.labels()
    hf_config.update(num_labels=len(labels), id2label=dict(enumerate(labels)),
                     label2id={label: i for i, label in enumerate(labels)})
  parent = os.path.dirname(os.path.abspath(export_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(export_dir)}.tmp-{uuid.uuid4().hex[:8]}")
  try:
    os.makedirs(tmp)
    save_file(weights, os.path.join(tmp, WEIGHTS_FILE), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(hf_config, f, indent=2, sort_keys=True)
    shutil.copyfile(files.vocab_file or md.vocab_file, os.path.join(tmp, schema.VOCAB_FILE))
    if os.path.isdir(export_dir):
      os.rmdir(export_dir)  # empty: checked above
    os.rename(tmp, export_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  log.info("Wrote %s (%s, %d weights) from %s", export_dir, architecture, len(weights),
           files.weights)
  return export_dir
