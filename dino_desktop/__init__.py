"""DINO Desktop: a photo organizer that understands pictures through DINOv2 embeddings."""

__version__ = "0.1.0"
