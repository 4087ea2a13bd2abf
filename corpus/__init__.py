"""corpus: the data engine. Ingest, filter, deduplicate, mix and tokenize text, each stage writing a
dataset folder that documents itself with a data card."""

__version__ = "0.1.0"
