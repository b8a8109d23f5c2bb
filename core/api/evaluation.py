"""Evaluation: a run's answers (base, tuned, each verified GGUF) asked and scored, the report, the blind
comparison a person marks, and runs compared side by side (see core/evaluation.py, core/compare.py)."""

from __future__ import annotations

from ..compare import COLUMNS, LEGEND, compared_run, comparison_rows, format_table
from ..evaluation import (
    EVAL_FOLDER,
    TABLE_FILE,
    blind_order,
    evaluate_run,
    read_eval_report,
    save_mark,
    shown,
    what_the_scores_measure,
)
from ..general_answers import RESULT_FILE as GENERAL_ANSWERS_FILE
from ..general_answers import forgetting_line, read_answers

__all__ = ["COLUMNS", "EVAL_FOLDER", "GENERAL_ANSWERS_FILE", "LEGEND", "TABLE_FILE", "blind_order", "compared_run", "comparison_rows",
           "evaluate_run", "forgetting_line", "format_table", "read_answers", "read_eval_report", "save_mark", "shown",
           "what_the_scores_measure"]
