import pytest

from bertline.trainer import train
from tests.trainer import helpers


@pytest.fixture(scope="session")
def lang_records(tmp_path_factory):
  """A preprocess output of the English-vs-Chinese task (2 train shards, dev)."""
  return helpers.preprocess_language_task(str(tmp_path_factory.mktemp("lang")))


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
  return helpers.tiny_model_config(str(tmp_path_factory.mktemp("cfg") / "config.json"))


@pytest.fixture(scope="session")
def full_run(lang_records, tiny_config, tmp_path_factory):
  """Shared by the train and loop tests (session-scoped: it costs a 40-step run).

  An uninterrupted 40-step run (2 epochs) with dropout, evaluated every 10 steps."""
  model_dir = tmp_path_factory.mktemp("full") / "m"
  return train.run(helpers.train_config(lang_records, model_dir, tiny_config)), model_dir
