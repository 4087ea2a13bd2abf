"""Filtering stages: each rule writes its reason, and rejected documents keep it."""
