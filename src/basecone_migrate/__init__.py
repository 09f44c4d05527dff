"""basecone-migrate: move Basecone administrations between environments."""

__version__ = "0.1.0"
