"""Domain tokenizer training (train_tokenizer), Arrow IPC token shards (shards), their check (verify) and cards (report)."""
