"""The exporter: a trained model_dir -> a versioned serving export -> a registry.

export (SavedModel with raw-text signatures), quantize (TF Lite int8/float16),
serving_check (TF Serving warmup requests, replayed by serving_probe in a clean
process before a push), push (versioned, atomic, to gs:// or a directory) and
vertex_registry (the pushed version in the Vertex AI Model Registry).
"""
