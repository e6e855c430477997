"""Top-k sparse autoencoders over index embeddings: model, trainer, metrics, labels, HTML export."""
