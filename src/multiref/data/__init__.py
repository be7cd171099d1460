"""Data stage: corpus acquisition, preprocessing, pairs, vocabulary, synthetic corpus."""
