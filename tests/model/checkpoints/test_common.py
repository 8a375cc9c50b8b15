"""model/checkpoints/common.py: PretrainedFiles.validate_for checks vocabulary, length and case."""

import pytest

from bertline import resources
from bertline.model import checkpoints


def test_validate_for_vocab_length_and_case(tmp_path):
  files = checkpoints.resolve_pretrained(resources.minilm_dir())
  assert files.validate_for(128, do_lower_case=True).vocab_size == 30522
  with pytest.raises(ValueError, match="Cannot use sequence length 513 .* up to sequence "
                                       "length 512 .*max_position_embeddings"):
    files.validate_for(513)
  short_vocab = tmp_path / "vocab.txt"
  short_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
  with pytest.raises(ValueError, match="vocab.txt has 5 tokens but .*config.json says "
                                       "vocab_size 30522"):
    files.validate_for(128, vocab_file=str(short_vocab))
  # nreimers/MiniLM-L6-H384-uncased: an uncased model (named in its config.json).
  with pytest.raises(ValueError, match="do_lower_case=False .*uncased"):
    files.validate_for(128, do_lower_case=False)
