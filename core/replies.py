"""Greedy replies of a transformers model to many conversations at once, and a cache of a base model's.

The training child asks a model many questions at once: the base answers the everyday questions
(general_answers.py) and the general chat prompts that replay trains on (train/replay.py), a teacher
answers the prompts it distils, and the tuned model answers the everyday questions again. Batched,
left-padded greedy generation that stops on every end-of-turn token serves them all.

A base model answers the same questions in every run that starts from it, so its replies are cached
under TUNEFORGE_HOME/cache/replies, keyed by the model's files, its chat template, the precision and
device it ran in, the conversations and the token budget: any change asks again. Replay asks its prompts
only until it has enough answers, so the cache may hold the answers to a first part of the conversations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .paths import tuneforge_home
from .reply import Reply

GENERATION_BATCH = 16
"""Conversations generated together: a sixteenth of the decoding steps of one at a time (the everyday probe on
a tiny model: 14 s at 8, 7 s at 32), with a key/value cache small next to training's memory."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model")
"""The files of a model folder whose change changes its answers (weights, config, tokenizer)."""

Conversation = list[dict[str, Any]]


def generate_replies(model: Any, tokenizer: Any, conversations: Sequence[Conversation], max_new_tokens: int) -> list[Reply]:
    """The model's greedy reply to each conversation, and whether it ended its turn within `max_new_tokens`;
    generated GENERATION_BATCH at a time, left-padded, in eval mode (the model's mode is restored)."""
    import torch

    from .chat_templates import end_of_turn_ids

    stop = sorted(end_of_turn_ids(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"  # a batch's answers all start at its last column
    model.eval()
    replies = []
    try:
        for start in range(0, len(conversations), GENERATION_BATCH):
            batch = list(conversations[start:start + GENERATION_BATCH])
            inputs = tokenizer.apply_chat_template(batch, add_generation_prompt=True, padding=True,
                                                   return_tensors="pt", return_dict=True)
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            with torch.inference_mode():
                # use_cache: training turns the key/value cache off in the model's config, and without it every
                # new token recomputes the whole sequence (the tuned model answered 8× slower than its base)
                output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                        eos_token_id=stop, pad_token_id=pad, use_cache=True)
            for row in output[:, inputs["input_ids"].shape[1]:].tolist():
                ended = any(token in stop for token in row)
                replies.append(Reply(tokenizer.decode(row, skip_special_tokens=True).strip(), ended))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return replies


def cached_base_replies(model: Any, tokenizer: Any, model_path: Path, conversations: Sequence[Conversation],
                        max_new_tokens: int, enough: Callable[[list[Reply]], bool] | None = None) -> list[Reply]:
    """`generate_replies` for a base model loaded from `model_path`, read from the cache when this model,
    template, precision and device already answered these conversations with this budget.

    With `enough`, the conversations are answered in order, GENERATION_BATCH at a time, only until
    `enough(replies so far)` holds: the replies of a prefix (replay needs a few dozen of its 138 prompts).
    The cache keeps the prefix answered so far and a later run that needs more goes on from it; the batches
    are the same as answering all at once, so the replies are too."""
    key = _cache_key(model, tokenizer, model_path, conversations, max_new_tokens)
    path = tuneforge_home() / "cache" / "replies" / f"{key}.json"
    try:
        replies = [Reply(text, stopped) for text, stopped in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        replies = []  # not cached yet, or a file from another version: answer again
    while len(replies) < len(conversations) and not (enough and enough(replies)):
        batch_end = len(conversations) if enough is None else len(replies) + GENERATION_BATCH
        replies += generate_replies(model, tokenizer, conversations[len(replies):batch_end], max_new_tokens)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps([[r.text, r.stopped] for r in replies], ensure_ascii=False))
    return replies


def _cache_key(model: Any, tokenizer: Any, model_path: Path, conversations: Sequence[Conversation], max_new_tokens: int) -> str:
    digest = hashlib.sha256()
    folder = Path(model_path)
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES) if folder.is_dir() else [folder]
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    parameter = next(model.parameters())
    digest.update(f"{folder.resolve()}|{parameter.dtype}|{parameter.device.type}|{max_new_tokens}|".encode())
    digest.update(str(getattr(tokenizer, "chat_template", "")).encode())
    digest.update(json.dumps(list(conversations), sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()[:24]
