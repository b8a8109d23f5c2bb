"""Models: the catalog, a model named by a person (checked, found on this machine), and whether one fits and exports.

Reading the catalog and planning memory are the light modules `catalog` and `fit`; what touches the disk or
the hub is here."""

from __future__ import annotations

from ..catalog import DEFAULT_MODEL, DEFAULT_MODEL_SPEC, ModelSpec, all_models
from ..fit import catalog_plan, model_fit
from ..models import check_model_reference, is_downloaded, known_architecture, resolve_model

__all__ = ["DEFAULT_MODEL", "DEFAULT_MODEL_SPEC", "ModelSpec", "all_models", "catalog_plan", "check_model_reference", "is_downloaded",
           "known_architecture", "model_fit", "resolve_model"]
