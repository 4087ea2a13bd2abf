"""train: a thin trainer that pretrains on corpus token shards and instruction-tunes with TRL."""

__version__ = "0.1.0"
