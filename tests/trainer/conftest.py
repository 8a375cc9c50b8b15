import pytest

from tests.trainer import helpers


@pytest.fixture(scope="session")
def lang_records(tmp_path_factory):
  """A preprocess output of the English-vs-Chinese task (2 train shards, dev)."""
  return helpers.preprocess_language_task(str(tmp_path_factory.mktemp("lang")))
