"""Mixing by domain or source ratio to a token or document budget: datasets and SFT files."""
