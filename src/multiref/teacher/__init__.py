"""The GPT-2 teacher: tokenizer, input format, fine-tuning, nucleus sampling, hypothesis shards."""
