"""Publishing: a run's adapter, merged model and verified GGUFs pushed to the Hugging Face Hub in one commit, with a
model card from the run's evidence, or copied into a folder to look at first (see core/publish.py)."""

from __future__ import annotations

from ..publish import WHAT, published_files, push

__all__ = ["WHAT", "published_files", "push"]
