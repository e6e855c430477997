"""memetui: find images by steering a CLIP query along sparse-autoencoder feature directions."""

__version__ = "0.1.0"
