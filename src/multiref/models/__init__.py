"""Dialogue models of the paper (HRED family first); one file per model, shared components."""
