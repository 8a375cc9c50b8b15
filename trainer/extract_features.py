"""`bertline extract-features`: google-research/bert's extract_features.py on Keras.

Per-token vectors of chosen layers of a pretrained (or fine-tuned) BERT/ALBERT
for feature-based use. Input: one text per line; a pair is written
`text_a ||| text_b`, as extract_features.py reads it. Output: its JSON-lines
format, one line per input, so existing consumers keep working:

  {"linex_index": 0, "features": [
     {"token": "[CLS]", "layers": [{"index": -1, "values": [0.123456, ...]}, ...]},
     ...]}

Tokens are those of the input (the [CLS]/[SEP] included, padding not); values
are rounded to 6 decimals as the reference rounds them.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from bertline import fileio, flags, schema
from bertline.model import checkpoints, modeling
from bertline.preprocessing.features import pack_features
from bertline.preprocessing.tokenization import BertTokenizer
from bertline.trainer import config as train_config
from bertline.trainer.config import ExtractFeaturesConfig

log = logging.getLogger(__name__)

_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


def read_examples(input_file: str) -> List[Tuple[str, Optional[str]]]:
  """(text_a, text_b or None) per line, as extract_features.read_examples reads them.

  Lines end at "\\n" only; bytes that are not UTF-8 are dropped (BERT's
  convert_to_unicode); each line is stripped; an empty line is an example.
  """
  if not fileio.exists(input_file):
    raise FileNotFoundError(f"--input {input_file} not found.")
  data = fileio.read_bytes(input_file)
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  examples = []
  for raw in lines:
    line = raw.decode("utf-8", "ignore").strip()
    m = _PAIR.match(line)
    examples.append((line, None) if m is None else (m.group(1), m.group(2)))
  return examples


def parse_layers(value: str, num_layers: int) -> List[int]:
  """`-1,-2,-3,-4` -> [-1, -2, -3, -4], checked against the model's depth."""
  try:
    layers = [int(x) for x in value.split(",") if x.strip()]
  except ValueError:
    raise ValueError(f"--layers {value!r}: expected comma-separated integers such as "
                     "-1,-2,-3,-4.") from None
  if not layers:
    raise ValueError("--layers is empty; give at least one layer index such as -1.")
  bad = [i for i in layers if not -num_layers <= i < num_layers]
  if bad:
    raise ValueError(f"--layers {bad} out of range: the model has {num_layers} layers, so "
                     f"indices go from {-num_layers} to {num_layers - 1}.")
  return layers


def _batches(items: Sequence, size: int) -> Iterator[Tuple[int, Sequence]]:
  for start in range(0, len(items), size):
    yield start, items[start:start + size]


class FeatureExtractor:
  """Tokenizes, packs and runs texts through an encoder; yields JSON lines.

  Args:
    model: str. Anything checkpoints.resolve_pretrained accepts.
    vocab_file: str or None. Default: the vocab.txt beside the model.
    layers: list of int. Layer indices (negative from the top).
    max_seq_length: int. Longer inputs are truncated as BERT truncates them.
    do_lower_case: bool. Tokenizer casing (checked against known model names).
    batch_size: int. Examples per forward pass.
    jit_compile: bool or None. XLA; None chooses modeling.default_jit_compile().
  """

  def __init__(self, model: str, vocab_file: Optional[str], layers: str = "-1,-2,-3,-4",
               max_seq_length: int = 128, do_lower_case: bool = True, batch_size: int = 32,
               jit_compile: Optional[bool] = None):
    files = checkpoints.resolve_pretrained(model)
    vocab_file = vocab_file or files.vocab_file
    if not vocab_file:
      raise ValueError(f"{model} has no vocab.txt beside it; pass --vocab-file.")
    config = files.validate_for(max_seq_length, vocab_file, do_lower_case)
    self.layers = parse_layers(layers, config.num_hidden_layers)
    self.max_seq_length = max_seq_length
    self.batch_size = batch_size
    self.tokenizer = BertTokenizer(vocab_file, do_lower_case=do_lower_case)
    self.encoder = modeling.BertEncoder(config)
    report = checkpoints.load_pretrained(self.encoder, files)
    if report.new:
      raise ValueError(f"{model} lacks encoder weights {report.new[:4]}; is it a complete "
                       "pretrained model?")
    chosen = list(self.layers)
    jit = modeling.default_jit_compile() if jit_compile is None else jit_compile

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def run(features):
      outputs = self.encoder(features, training=False)["encoder_outputs"]
      return tf.stack([tf.cast(outputs[i], tf.float32) for i in chosen], axis=1)

    self._run = run

  def _pack(self, examples: Sequence[Tuple[str, Optional[str]]]):
    """Features of a batch mixing single texts and pairs, in input order."""
    tok = self.tokenizer
    singles = [i for i, (_, b) in enumerate(examples) if b is None]
    pairs = [i for i, (_, b) in enumerate(examples) if b is not None]
    parts, order = [], []
    if singles:
      ids_a = tok.tokenize(tf.constant([examples[i][0] for i in singles]))
      parts.append(pack_features(ids_a, None, self.max_seq_length, tok.cls_id, tok.sep_id))
      order += singles
    if pairs:
      ids_a = tok.tokenize(tf.constant([examples[i][0] for i in pairs]))
      ids_b = tok.tokenize(tf.constant([examples[i][1] for i in pairs]))
      parts.append(pack_features(ids_a, ids_b, self.max_seq_length, tok.cls_id, tok.sep_id))
      order += pairs
    inverse = np.argsort(order)
    return {name: np.concatenate([p[name].numpy() for p in parts])[inverse].astype(np.int32)
            for name in schema.SEQUENCE_FEATURES}

  def extract(self, examples: Sequence[Tuple[str, Optional[str]]],
              progress: bool = False) -> Iterator[str]:
    """One JSON line (without newline) per example, in order."""
    batches = _batches(examples, self.batch_size)
    total = (len(examples) + self.batch_size - 1) // self.batch_size
    for start, batch in tqdm(batches, total=total, disable=not progress, unit="batch",
                             desc="extract-features"):
      features = self._pack(batch)
      n = len(batch)
      if n < self.batch_size:  # one shape for every call: no retracing / recompiling
        features = {k: np.pad(v, [(0, self.batch_size - n), (0, 0)])
                    for k, v in features.items()}
      values = self._run(features).numpy()  # [batch, layers, seq, hidden]
      for row in range(n):
        yield self._json_line(start + row, features[schema.INPUT_IDS][row],
                              int(features[schema.INPUT_MASK][row].sum()), values[row])

  def _json_line(self, index: int, ids: np.ndarray, length: int, values: np.ndarray) -> str:
    vocab = self.tokenizer.vocab
    features = []
    for position in range(length):
      layers = [{"index": layer, "values": [round(float(x), 6) for x in values[j, position]]}
                for j, layer in enumerate(self.layers)]
      features.append({"token": vocab[ids[position]], "layers": layers})
    return json.dumps({"linex_index": index, "features": features})


def run(config: ExtractFeaturesConfig, progress: bool = False) -> int:
  """Writes extract_features.py's JSON lines for every line of `config.input`.

  The output appears whole or not at all (written to a temporary sibling,
  then renamed). Returns the number of examples written.
  """
  output_file = config.output
  examples = read_examples(config.input)  # before loading anything: bad paths fail fast
  extractor = FeatureExtractor(config.model, config.vocab_file or None, config.layers,
                               config.max_seq_length, config.do_lower_case, config.batch_size,
                               config.xla)
  parent = output_file.rsplit("/", 1)[0] if "/" in output_file else ""
  if parent:
    fileio.makedirs(parent)
  tmp = f"{output_file}.tmp-{uuid.uuid4().hex}"
  try:
    with tf.io.gfile.GFile(tmp, "w") as out:
      for line in extractor.extract(examples, progress=progress):
        out.write(line + "\n")
    tf.io.gfile.rename(tmp, output_file, overwrite=True)
  finally:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
  log.info("Wrote features of %d inputs (layers %s) to %s", len(examples), extractor.layers,
           output_file)
  return len(examples)


# The flags live with the config (trainer/config.py): `--help` answers without TensorFlow.
build_parser = train_config.extract_features_parser


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  run(flags.config_from_flags(ExtractFeaturesConfig, parser.parse_args(argv), parser),
      progress=True)
  return 0
