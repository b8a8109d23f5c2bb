"""Datasets: read the shapes people have (formats), then tokenize, mask and split (prepare). Drafting one from
documents is `core/drafting/`."""
