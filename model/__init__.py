"""The model every stage shares: BERT/ALBERT in Keras 3, its config, its checkpoints, its model_dir.

Installed as `bertline.model`. trainer/ trains it, evaluator/ scores it,
exporter/ serves it; each imports it at module top, and it imports no stage.
"""
