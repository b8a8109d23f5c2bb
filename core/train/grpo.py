"""GRPO through TRL's GRPOTrainer: the records as prompts with reference answers, the run's rewards as TRL's
reward functions, and what a person watches while it samples (mean reward per reward, KL, sample answers).

Each step samples `num_generations` answers to a prompt, scores each with the weighted sum of the rewards, and
moves the model towards the answers that scored above their group's mean. The reference for the KL term is the
base (the model with its adapter off): `beta` holds the tuned model near what it knew.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from ..chat_templates import end_of_turn_ids
from ..config import RunConfig
from ..data.prepare import prompt_messages, reference_answer
from ..data.records import Example
from ..events import Sampled
from ..rewards import Completions, Reward, checked_scores, score_function, with_defaults

SAMPLES_EVERY = 10
"""Steps between the sampled answers a run records for the app (the first step's too): as a notebook prints them."""
SAMPLES_SHOWN = 4


def prompt_rows(examples: list[Example]) -> list[dict[str, Any]]:
    """TRL's conversational prompt-only rows, with each record's reference answer (None for a prompt alone) and
    FILE:LINE, which reach the rewards as columns."""
    return [{"prompt": prompt_messages(e), "reference": reference_answer(e), "source": e.source} for e in examples]


def _question(prompt: Any) -> str:
    """A prompt's last message (the question), or the prompt itself when it is a string."""
    return _text(prompt[-1:]) if isinstance(prompt, list) else str(prompt)


def _text(completion: Any) -> str:
    """A completion's text: the assistant message of a conversational completion, or the string itself."""
    if isinstance(completion, list):
        return "".join(str(message.get("content") or "") for message in completion if isinstance(message, dict))
    return str(completion)


def trl_reward_functions(rewards: list[Reward], tokenizer: Any) -> list[Callable[..., list[float | None]]]:
    """One TRL reward function per reward (its `__name__` names the reward's chart), each held to one number or None
    per answer, a failure naming the reward and the record (core/rewards.py)."""
    stops = end_of_turn_ids(tokenizer) | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
    names = [reward.name for reward in rewards]
    functions = []
    for index, reward in enumerate(rewards):
        score = score_function(reward)

        def call(prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], reward: Reward = reward,
                 score: Any = score, **columns: Any) -> list[float | None]:
            batch = Completions(
                prompts=[_question(prompt) for prompt in prompts],
                answers=[_text(completion) for completion in completions],
                references=list(columns.get("reference") or [None] * len(completions)),
                ended=[bool(ids) and ids[-1] in stops for ids in completion_ids],
                sources=list(columns.get("source") or ["?"] * len(completions)),
            )
            return checked_scores(reward, score, batch)

        call.__name__ = reward.name if names.count(reward.name) == 1 else f"{reward.name}#{index + 1}"  # one chart each
        if hasattr(score, "close"):
            call.close = score.close  # type: ignore[attr-defined]
        functions.append(call)
    return functions


def stop_at_end_of_turn(model: Any, tokenizer: Any) -> None:
    """Make sampling stop at every end-of-turn token of the chat template (a base model given its family's template
    does not list them among its generation config's eos ids), so an answer that ends its turn is seen to."""
    config = model.generation_config
    current = config.eos_token_id
    ids = set(current if isinstance(current, list) else [current] if current is not None else [])
    config.eos_token_id = sorted(ids | end_of_turn_ids(tokenizer))


def build_grpo_trainer(args: dict[str, Any], config: RunConfig, model: Any, tokenizer: Any, train: list[Example],
                       evaluation: list[Example], common: dict[str, Any]) -> Any:
    """TRL's GRPOTrainer for the run: its rewards, group size, answer budget, sampling temperature and KL weight."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rewards = with_defaults(config.rewards)
    stop_at_end_of_turn(model, tokenizer)
    grpo_args = GRPOConfig(**args, beta=config.beta or 0.0, num_generations=config.num_generations,
                           max_completion_length=config.max_completion_length, reward_weights=[r.weight for r in rewards],
                           temperature=config.sample_temperature, log_completions=False)
    functions = trl_reward_functions(rewards, tokenizer)
    trainer = GRPOTrainer(args=grpo_args, reward_funcs=functions, train_dataset=Dataset.from_list(prompt_rows(train)),
                          eval_dataset=Dataset.from_list(prompt_rows(evaluation)) if evaluation else None, **common)
    trainer.add_callback(ReleaseJudges(functions))
    return trainer


class ReleaseJudges(TrainerCallback):
    """Close the judges' models and connections (judge: rewards) once training ends, before the run's merge and
    probes need the memory."""

    def __init__(self, functions: list[Any]) -> None:
        self.closers = [function.close for function in functions if hasattr(function, "close")]

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for close in self.closers:
            close()
        self.closers = []


class SampledAnswers(TrainerCallback):
    """Record some of the answers a GRPO step sampled, with each reward's scores, at the first step and every
    SAMPLES_EVERY after (a `sampled` event the app shows), from what the trainer keeps for its completions table."""

    def __init__(self, run: Any, trainer: Any) -> None:
        self.run, self.trainer = run, trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != 1 and state.global_step % SAMPLES_EVERY:
            return
        logs = getattr(self.trainer, "_logs", None) or {}
        prompts, answers = list(logs.get("prompt", []))[-SAMPLES_SHOWN:], list(logs.get("completion", []))[-SAMPLES_SHOWN:]
        rewards = {name: [None if v != v else float(v) for v in list(values)[-SAMPLES_SHOWN:]]
                   for name, values in (logs.get("rewards") or {}).items()}
        if answers:
            self.run.record(Sampled(step=state.global_step, prompts=[_question(p) for p in prompts],
                                    answers=[_text(a) for a in answers], rewards=rewards))
