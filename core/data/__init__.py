"""Datasets: read the shapes people have (formats), then tokenize, mask and split (prepare)."""
