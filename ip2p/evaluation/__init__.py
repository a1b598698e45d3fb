"""Evaluation: ``samples`` (held-out clips from a processed dataset or a raw
root) and ``scoring`` (the model beside the reference rows, tables, grid)."""
