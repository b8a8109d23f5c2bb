"""The base model's own answers that train beside a narrow dataset, so the model keeps what it could do.

Fine-tuned on a few dozen new facts alone, a chat model starts answering everything the way it
answers them: asked who invented the telephone it names someone in the facts' style. Replaying the
model's own behaviour while it learns keeps it (self-distillation; MixSD and prompt distillation
report the same), and mixing in facts the model already knows keeps its knowledge apart from the new
ones (Pletenev et al., 2025). Before training, the base answers tuneforge's replay prompts: the
general chat prompts (datasets/general-prompts.txt: greetings, how-tos, short writing) and everyday
questions it knows (datasets/known-facts-prompts.txt); never the everyday questions that measure
forgetting (general_answers.py). The prompts are answered in a fixed order, and the answers that end
their turn are drawn until they hold `replay` tokens for every token of the data (the base answers no
more prompts than that takes), and train with it, so a run costs at most
1 + `replay` times as much per epoch. `distill_general` uses the general chat prompts with a
teacher's answers instead.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from ..data.records import Example
from ..reply import Reply

GENERAL_PROMPTS = "general-prompts.txt"
KNOWN_FACTS_PROMPTS = "known-facts-prompts.txt"
GENERAL_ANSWER_TOKENS = 160
"""The longest general answer kept: the prompts ask for short answers; one not finished by then is dropped."""
REPLAY_PROMPT_TOKENS = 64
"""More than any general prompt takes with its chat template: with GENERAL_ANSWER_TOKENS, the longest a
replayed example can be, which the memory plan counts before the base has answered."""


def _prompts(name: str) -> list[str]:
    text = (resources.files("tuneforge.core") / "datasets" / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def general_prompts() -> list[str]:
    """tuneforge's shipped general chat prompts (one a line): greetings, facts, how-tos, short writing."""
    return _prompts(GENERAL_PROMPTS)


def replay_prompts() -> list[str]:
    """What the base answers for replay: the general chat prompts and the everyday questions it knows, taken in
    turn (a small budget gets some of each)."""
    chat, known = general_prompts(), _prompts(KNOWN_FACTS_PROMPTS)
    mixed = [prompt for pair in zip(chat, known, strict=False) for prompt in pair]
    return mixed + chat[len(known):] + known[len(chat):]


def prompt_conversations(prompts: list[str]) -> list[list[dict[str, str]]]:
    """Each prompt as a one-turn conversation."""
    return [[{"role": "user", "content": prompt}] for prompt in prompts]


def answered_examples(prompts: list[str], replies: list[Reply], source: str = GENERAL_PROMPTS) -> list[Example]:
    """The prompts with their replies as conversations to train on; a reply that did not end its turn within
    GENERAL_ANSWER_TOKENS is left out (it would teach cutting off), and so is an empty one."""
    return [Example(f"{source}:{line}", [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply.text}])
            for line, (prompt, reply) in enumerate(zip(prompts, replies, strict=True), start=1) if reply.stopped and reply.text]


def general_examples(prompts: list[str], teacher: Any, tokenizer: Any) -> list[Example]:
    """A teacher's answers to `prompts` (general prompts, in file order), as conversations to distil."""
    from ..replies import generate_replies

    return answered_examples(prompts, generate_replies(teacher, tokenizer, prompt_conversations(prompts), GENERAL_ANSWER_TOKENS))


def base_replay_examples(base: Any, tokenizer: Any, base_path: Path,
                         enough: Callable[[list[Example]], bool] | None = None) -> list[Example]:
    """The base model's own answers to the replay prompts that ended their turn, in replay order, the prompts
    asked in order only until `enough(examples so far)` holds (cached per base model: every run from the same
    base replays the same answers, and a run that needs more goes on where the last stopped)."""
    from ..replies import cached_base_replies

    prompts = replay_prompts()

    def examples(replies: list[Reply]) -> list[Example]:
        return answered_examples(prompts[:len(replies)], replies, source="replay")

    replies = cached_base_replies(base, tokenizer, base_path, prompt_conversations(prompts), GENERAL_ANSWER_TOKENS,
                                  enough=(lambda so_far: enough(examples(so_far))) if enough else None)
    return examples(replies)


def within_budget(tokenized: list[Any], budget: int) -> list[Any]:
    """The tokenized replay examples, in order, as long as they fit in `budget` tokens (at least one)."""
    chosen, used = [], 0
    for example in tokenized:
        if chosen and used + len(example.input_ids) > budget:
            break
        chosen.append(example)
        used += len(example.input_ids)
    return chosen
