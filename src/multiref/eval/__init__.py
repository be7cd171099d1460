"""Evaluation of generated responses: decoding and the metrics of the paper (section 4.3)."""
