"""bertline: BERT text classifiers trained, judged and shipped as a pipeline."""

__version__ = "0.1.0"
