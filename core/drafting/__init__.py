"""Drafting a dataset from documents: text out of PDF, DOCX, HTML, Markdown and TXT (documents), chunks cut by tokens
(chunking), a drafting model (generators) asked for question–answer pairs under a schema (prompts, drafts), the
quality gates (pair_gates), and the prepared folder with its report and the review's verdicts (from_documents).

Reading and tokenizing datasets is `core/data/`; the two share no code.
"""
