"""`bertline pretrain-data`'s settings: the one declaration of each, its default, check and help.

create_pretraining_data.py's flags under bertline's spelling (--max-seq-length,
--masked-lm-prob, ...), with Google's defaults, plus the choices bertline adds:
how masks are drawn, which sentence-pair task (if any) the data carries, and
how much of the corpus is held out for pre-training's evaluation. From this
class come the command's flags (bertline/flags.py). No TensorFlow or Beam
import: `--help` and a config check stay instant.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, List, Tuple

from bertline import configs, flags, schema
from bertline.configs import SettingError, setting
from bertline.trainer.config import TrainConfig

INPUT_FORMATS = ("sentences", "documents")
MASKING = ("dynamic", "static")
PAIRS = ("none", "nsp", "sop")
# A work unit holds whole documents; random B segments (NSP) are drawn within it, so units are
# large: a 1M-line corpus is one or two of them.
DEFAULT_CHUNK_BYTES = 64 << 20
GOOGLE_DUPE_FACTOR = 10


@dataclasses.dataclass
class PretrainDataConfig:
  """Everything a pretrain-data run depends on (flags use the same names, with dashes)."""

  # What a pipeline run sets itself (a run config's pretrain section refuses them): the paths,
  # and the casing, which is data.do_lower_case: both corpora are read alike.
  RUN_KEYS: ClassVar[Tuple[str, ...]] = ("vocab_file", "output_dir", "overwrite", "do_lower_case")

  input: List[str] = setting(
      [], "raw text: a local path, glob or gs:// pattern (repeat the flag for more)",
      required=True, repeat=True)
  input_format: str = setting(
      "sentences", "sentences: create_pretraining_data.py's format, one sentence per line and a "
      "blank line between documents; documents: one document per line",
      choices=INPUT_FORMATS)
  vocab_file: str = setting("", "BERT vocab.txt of the model to pre-train", required=True)
  output_dir: str = setting("", "where TFRecords and metadata.json go", required=True)
  do_lower_case: bool = setting(
      True, "lower-case and strip accents (uncased models); --no-do-lower-case for cased and "
      "Chinese-cased models")
  max_seq_length: int = setting(
      128, "tokens per sequence incl. [CLS] and [SEP]", minimum=5,
      below="{key} {value} is too small: [CLS] A [SEP] B [SEP] needs at least 5 positions. "
      "Use e.g. 128.")
  max_predictions_per_seq: int = setting(20, "most masked positions per sequence", minimum=1)
  masked_lm_prob: float = setting(0.15, "share of each sequence's tokens that is masked")
  dupe_factor: int = setting(
      0, "copies of the corpus, each with other masks and pairs (0: Google's 10 with static "
      "masking, 1 with dynamic masking, whose masks are drawn anew each epoch)", minimum=0)
  short_seq_prob: float = setting(
      0.1, "share of sequences cut to a random shorter target length, as fine-tuning's inputs "
      "are often short")
  random_seed: int = setting(12345, "seed of every random choice (Google's default)")
  do_whole_word_mask: bool = setting(
      False, "mask every WordPiece of a word together (Google's whole-word masking)")
  masking: str = setting(
      "dynamic", "dynamic: masks drawn in the training input pipeline, anew each epoch "
      "(RoBERTa); static: masks written to the records, dupe-factor copies (Google's)",
      choices=MASKING)
  pairs: str = setting(
      "none", "sentence-pair task of each sequence: none (masked LM only), nsp (BERT's next "
      "sentence prediction) or sop (ALBERT's sentence-order prediction)", choices=PAIRS)
  held_out_fraction: float = setting(
      0.01, "share of documents kept out of training, for pre-training's evaluation (0: none, "
      "as create_pretraining_data.py)")
  num_shards: int = setting(
      0, "TFRecord shards of the train split (0: one per --chunk-bytes of input; each shard's "
      "documents are shuffled and paired among themselves)", minimum=0)
  chunk_bytes: int = setting(
      DEFAULT_CHUNK_BYTES, "bytes of input per unit of work (cut at document boundaries); one "
      "unit over the whole corpus is create_pretraining_data.py exactly", minimum=1)
  compression: str = setting("none", "TFRecord compression",
                             choices=sorted(schema.COMPRESSION_SUFFIX))
  batch_size: int = setting(1024, "lines tokenized per graph call", minimum=1)
  overwrite: bool = setting(False, "replace a finished output in --output-dir (off: refuse to)")
  # Apache Beam's own options (--runner, --project, ...): whatever flags are not pretrain-data's.
  beam_args: List[str] = setting([], "Apache Beam pipeline options", cli=False)

  def __post_init__(self):
    configs.check_settings(self)
    for key in ("masked_lm_prob", "short_seq_prob"):
      if not 0.0 <= getattr(self, key) <= 1.0:
        raise SettingError(key, f"{{key}} is a probability: give a number from 0 to 1, got "
                           f"{getattr(self, key)}.")
    if self.masked_lm_prob == 0.0:
      raise SettingError("masked_lm_prob", "{key} 0 masks nothing: masked-LM needs masks. "
                         "Use e.g. 0.15.")
    if not 0.0 <= self.held_out_fraction < 1.0:
      raise SettingError("held_out_fraction", "{key} must be at least 0 and below 1, got "
                         f"{self.held_out_fraction}; e.g. 0.01.")

  @property
  def copies(self) -> int:
    """How many passes over the corpus (dupe_factor, with 0 resolved)."""
    if self.dupe_factor:
      return self.dupe_factor
    return GOOGLE_DUPE_FACTOR if self.masking == "static" else 1


def build_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      PretrainDataConfig, "bertline pretrain-data",
      description="Masked-LM pre-training data from raw text, as google-research/bert's "
      "create_pretraining_data.py makes it (the same instances, given one work unit, static "
      "masking, --pairs nsp and the same seed), as a Beam job: sharded TFRecords, a held-out "
      "split and metadata.json for `bertline pretrain`.\n\nOther options go to Apache Beam, "
      "which must declare them (e.g. --runner DataflowRunner --project P --region R "
      "--temp_location gs://...); a flag neither has is refused.",
      epilog="example:\n  bertline pretrain-data --input 'corpus/*.txt' --vocab-file vocab.txt "
      "--output-dir work/pretrain-data\n\nGoogle's create_pretraining_data.py, exactly:\n"
      "  bertline pretrain-data --input corpus.txt --vocab-file vocab.txt --output-dir out "
      "--masking static --pairs nsp --held-out-fraction 0")


# TrainConfig's settings `bertline pretrain` has no use for: the classifier's dropout and label
# threshold, exporting a classifier, and distillation's.
PRETRAIN_SKIPPED = ("classifier_dropout", "label_threshold", "export", "export_dir", "teacher",
                    "student_layers", "temperature", "alpha")


def pretrain_parser() -> flags.ArgumentParser:
  """`bertline pretrain`'s flags: bertline train's (TrainConfig's), less the classifier's."""
  parser = flags.ArgumentParser(
      prog="bertline pretrain",
      description="Masked-LM pre-training (with NSP or SOP when the data has pairs) on "
      "`bertline pretrain-data` output, from a Google checkpoint, a Hugging Face directory or "
      "a bertline model_dir, on bertline train's loop: every strategy, mixed precision, XLA, "
      "resuming, TensorBoard, early stopping on the held-out split's masked-LM loss. Its "
      "--model-dir is what `bertline train --init-checkpoint` fine-tunes.",
      epilog="example:\n  bertline pretrain --data-dir work/pt-data --init-checkpoint "
      "uncased_L-12_H-768_A-12 --model-dir work/domain-bert --max-steps 10000 "
      "--learning-rate 5e-5")
  parser.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
  flags.add_config_flags(parser, TrainConfig, skip=PRETRAIN_SKIPPED)
  return parser
