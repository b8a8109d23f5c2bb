"""The rewards GRPO trains towards: checks a person states in a word, their own Python function, or a judge model.

A reward is written `KIND[:ARGUMENT]`, with a weight in front when it is not 1 (`2*contains`); KINDS says what each
kind checks. Every built-in scores 1 or 0. The reference kinds score nothing (None, left out of the weighted sum as
TRL does) for a prompt without a reference. A reward that raises stops the run with the reward and the record named.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .answer_scores import contains_reference, exact_match
from .errors import ConfigError, RewardError

RewardKind = Literal["exact", "contains", "numeric", "regex", "json", "length", "ends_turn", "code", "judge"]
KINDS: dict[str, str] = {
    "contains": "the answer holds the words of the record's reference answer (normalised)",
    "exact": "the answer is the record's reference answer (normalised)",
    "numeric": "the last number in the answer is the reference's last number, within ± TOLERANCE (default 0)",
    "regex": "the answer matches PATTERN (Python re.search; anchor it with ^…$ for the whole answer)",
    "json": "the answer is a JSON value (a ```json fence allowed), valid under SCHEMA (a file or inline) when given",
    "length": "the answer is MIN to MAX words long",
    "ends_turn": "the answer ended its turn within the answer budget (was not cut off)",
    "code": "FUNCTION (default `reward`) in the Python FILE scores the answers: runs your code, so only with allow code",
    "judge": "a judge model (any `data prepare` generator) says the answer states the reference",
}
"""Every reward kind and what it checks, in the order the app offers them."""
REFERENCE_KINDS = ("contains", "exact", "numeric", "judge")
"""The kinds that compare an answer with the record's reference answer."""
NEEDS_ARGUMENT = ("regex", "length", "code", "judge")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
WEIGHTED = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*\*\s*(.+)$")


class Reward(BaseModel):
    """One reward of a GRPO run, with its weight in the sum (see the module's table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RewardKind
    argument: str | None = None
    """The pattern, schema, MIN-MAX words, tolerance, FILE[:FUNCTION] or generator spec the kind takes."""
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _argument_fits(self) -> Reward:
        if self.kind in NEEDS_ARGUMENT and not self.argument:
            raise ValueError(f"reward {self.kind} needs an argument: {self.kind}:{ARGUMENT_HELP[self.kind]}")
        if self.kind in ("exact", "contains", "ends_turn") and self.argument:
            raise ValueError(f"reward {self.kind} takes no argument (got {self.argument!r})")
        if self.kind == "regex":
            try:
                re.compile(self.argument or "")
            except re.error as exc:
                raise ValueError(f"reward regex:{self.argument}: not a regular expression ({exc})") from None
        if self.kind == "length":
            length_band(self.argument or "")
        if self.kind == "numeric" and self.argument:
            try:
                if float(self.argument) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"reward numeric:{self.argument}: the tolerance is a number ≥ 0, e.g. numeric:0.01") from None
        return self

    @property
    def label(self) -> str:
        """How logs, charts and the run record name it: `contains`, `regex:^\\d+$`, `code:rewards.py`."""
        return f"{self.kind}:{self.argument}" if self.argument else self.kind

    @property
    def name(self) -> str:
        """A short name for its chart and log keys: the kind, with a file's name or a short argument."""
        file = reward_file(self.kind, self.argument)
        if file is not None:
            return f"{self.kind}:{Path(file).name}"
        return self.label if len(self.label) <= 24 else self.kind

    def written(self) -> str:
        """The reward as it is typed: `[WEIGHT*]KIND[:ARGUMENT]`."""
        return (f"{self.weight:g}*" if self.weight != 1 else "") + self.label

    @classmethod
    def parse(cls, text: str) -> Reward:
        """`[WEIGHT*]KIND[:ARGUMENT]` as typed on the command line or in a config; a ConfigError says what is wrong."""
        try:
            return cls(**reward_fields(text))
        except ValueError as exc:
            raise ConfigError(f"reward {text!r}: {_first_problem(exc)}", REWARD_HINT) from None


def reward_fields(written: Any) -> Any:
    """A reward's fields from `[WEIGHT*]KIND[:ARGUMENT]`; anything but a string is returned as it is (a config's mapping)."""
    if not isinstance(written, str):
        return written
    weight, text = 1.0, written.strip()
    weighted = WEIGHTED.match(text)
    if weighted:
        weight, text = float(weighted.group(1)), weighted.group(2).strip()
    kind, _, argument = text.partition(":")
    return {"kind": kind.strip(), "argument": argument or None, "weight": weight}


def reward_file(kind: Any, argument: Any) -> str | None:
    """The file a reward's argument names: a code reward's Python file (before `:FUNCTION`), a json reward's schema
    file (not a schema written inline, which starts with `{`); None for every other reward."""
    if not isinstance(argument, str) or not argument or kind not in ("code", "json"):
        return None
    if kind == "json":
        return None if argument.lstrip().startswith("{") else argument
    return argument.partition(":")[0]


def with_absolute_file(written: Any, base: Path) -> Any:
    """A reward whose file (a code reward's Python file, a json reward's schema file) is made absolute against `base`,
    the folder it was typed in: the training child runs elsewhere."""
    fields = reward_fields(written.model_dump() if isinstance(written, Reward) else written)
    file = reward_file(fields.get("kind"), fields.get("argument")) if isinstance(fields, dict) else None
    if file is None:
        return written
    path = Path(file).expanduser()
    rest = fields["argument"][len(file):]  # a code reward's `:FUNCTION`
    return {**fields, "argument": str(path if path.is_absolute() else (base / path).resolve()) + rest}


ARGUMENT_HELP = {"regex": "PATTERN", "length": "MIN-MAX (words)", "code": "FILE[:FUNCTION]", "judge": "GENERATOR",
                 "numeric": "TOLERANCE", "json": "SCHEMA"}
REWARD_HINT = ("a reward is [WEIGHT*]KIND[:ARGUMENT]: exact, contains, numeric[:TOLERANCE], regex:PATTERN, json[:SCHEMA], "
               "length:MIN-MAX, ends_turn, code:FILE[:FUNCTION] (with --allow-code), judge:GENERATOR; e.g. --reward contains "
               "--reward '0.5*length:5-60'")
DEFAULT_REWARDS = ("contains", "ends_turn")
"""What a GRPO run is rewarded for when its config names no reward: answers holding the reference, that end their turn."""


def with_defaults(rewards: Sequence[Reward]) -> list[Reward]:
    """A run's rewards: its own, or DEFAULT_REWARDS when it names none."""
    return list(rewards) or [Reward.parse(written) for written in DEFAULT_REWARDS]


def sampling_note(rewards: Sequence[Reward], generations: int, answer_tokens: int, answers_per_step: int) -> str:
    """What a GRPO run will do each step, in words, for the plan; a judge's cost said."""
    rewarded = " + ".join(reward.written() for reward in with_defaults(rewards))
    note = (f"grpo: {generations} answers sampled per prompt (up to {answer_tokens} tokens each), {answers_per_step} answers "
            f"a step, rewarded for {rewarded}")
    judges = [reward.label for reward in rewards if reward.kind == "judge"]
    if judges:
        note += (f"; the judge ({judges[0]}) is asked once per sampled answer: {answers_per_step} requests a step, "
                 "most of each step's time unless it is fast")
    return note


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        problem = errors()[0]
        message = str(problem.get("msg", exc)).removeprefix("Value error, ")
        return f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {message}" if problem.get("loc") else message
    return str(exc)


def length_band(argument: str) -> tuple[int, int]:
    """`MIN-MAX` words as two numbers (ValueError when it is not MIN ≤ MAX)."""
    found = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", argument)
    if not found or int(found.group(1)) > int(found.group(2)):
        raise ValueError(f"reward length:{argument}: write the band of words as MIN-MAX, e.g. length:5-60")
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class Completions:
    """One batch of sampled answers, as every reward reads them."""

    prompts: list[str]
    """Each prompt's last user message."""
    answers: list[str]
    references: list[str | None]
    ended: list[bool]
    """Whether the answer ended its turn (an end-of-turn token) rather than running out of its budget."""
    sources: list[str]
    """Each record's FILE:LINE, for errors."""

    def one(self, index: int) -> Completions:
        """The batch of the one answer at `index` (to find which record a failing reward fails on)."""
        return Completions(*([getattr(self, name)[index]] for name in ("prompts", "answers", "references", "ended", "sources")))


Score = Callable[[Completions], list[float | None]]


def last_number(text: str) -> float | None:
    """The last number written in `text` (thousands commas allowed), or None."""
    found = NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def json_value(text: str) -> Any:
    """The JSON value `text` holds, inside a ```json fence or bare (ValueError when there is none)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return json.loads(fenced.group(1) if fenced else text.strip())


def read_schema(argument: str | None) -> dict[str, Any] | None:
    """A json reward's schema: inline JSON (starting with `{`), or a file of it; None for any JSON value."""
    if not argument:
        return None
    file = reward_file("json", argument)
    try:
        schema = json.loads(Path(file).expanduser().read_text(encoding="utf-8") if file else argument)
    except OSError as exc:
        raise ConfigError(f"reward json:{argument}: cannot read the schema ({exc.strerror or exc})",
                          "name a JSON schema file, or write the schema inline: json:{\"type\": \"object\", …}") from None
    except ValueError as exc:
        raise ConfigError(f"reward json:{argument}: the schema is not JSON ({exc})", "a JSON schema is a JSON object") from None
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"reward json:{argument}: not a valid JSON schema ({exc.message})",
                          "see https://json-schema.org/understanding-json-schema") from None
    return schema


def _per_answer(check: Callable[[str, str | None, bool], float | None]) -> Score:
    return lambda batch: [check(answer, reference, ended)
                          for answer, reference, ended in zip(batch.answers, batch.references, batch.ended, strict=True)]


def _numeric(tolerance: float) -> Score:
    def check(answer: str, reference: str | None, ended: bool) -> float | None:
        expected = last_number(reference) if reference else None
        if expected is None:
            return None
        given = last_number(answer)
        return float(given is not None and abs(given - expected) <= tolerance)

    return _per_answer(check)


def _json(schema: dict[str, Any] | None) -> Score:
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema) if schema else None

    def check(answer: str, reference: str | None, ended: bool) -> float:
        try:
            value = json_value(answer)
        except ValueError:
            return 0.0
        return float(validator is None or validator.is_valid(value))

    return _per_answer(check)


def _length(argument: str) -> Score:
    low, high = length_band(argument)
    return _per_answer(lambda answer, reference, ended: float(low <= len(answer.split()) <= high))


def _code(argument: str) -> Score:
    """The function a person wrote: called as `function(completions=[answer, …], prompts=[…], reference=[…],
    ended=[…])`, returning one number (or None) per completion."""
    import importlib.util

    file = reward_file("code", argument) or ""
    name = argument[len(file) + 1:]
    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"reward code:{argument}: no such file {path}", "name a Python file that defines the reward function")
    spec = importlib.util.spec_from_file_location(f"tuneforge_reward_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - a person's file: any error in it is theirs to fix, said as such
        raise RewardError(f"reward code:{argument}: {path} failed to load ({type(exc).__name__}: {exc})",
                          "run `python FILE` to see the error in it") from None
    function = getattr(module, name or "reward", None)
    if not callable(function):
        raise ConfigError(f"reward code:{argument}: {path} defines no function {name or 'reward'!r}",
                          "define def reward(completions, **kwargs) -> list[float], or name yours: code:FILE:FUNCTION")

    def score(batch: Completions) -> list[float | None]:
        return function(completions=batch.answers, prompts=batch.prompts, reference=batch.references, ended=batch.ended)

    return score


def _judge(spec: str) -> Score:
    from .drafting.generators import open_generator
    from .judge import judge_answer

    judge = open_generator(spec)

    def check(batch: Completions) -> list[float | None]:
        verdicts = [judge_answer(judge, prompt, reference, answer) if reference else None
                    for prompt, answer, reference in zip(batch.prompts, batch.answers, batch.references, strict=True)]
        return [None if verdict is None or verdict.correct is None else float(verdict.correct) for verdict in verdicts]

    check.close = judge.close  # type: ignore[attr-defined]  # the judge's model or connection, released when training ends
    return check


def score_function(reward: Reward) -> Score:
    """What computes `reward` over a batch (a file it names was made absolute where the run was created)."""
    if reward.kind == "exact":
        return _per_answer(lambda answer, reference, ended: None if reference is None else float(exact_match(answer, reference)))
    if reward.kind == "contains":
        return _per_answer(lambda answer, reference, ended: None if reference is None else float(contains_reference(answer, reference)))
    if reward.kind == "numeric":
        return _numeric(float(reward.argument or 0))
    if reward.kind == "regex":
        pattern = re.compile(reward.argument or "")
        return _per_answer(lambda answer, reference, ended: float(pattern.search(answer) is not None))
    if reward.kind == "json":
        return _json(read_schema(reward.argument))
    if reward.kind == "length":
        return _length(reward.argument or "")
    if reward.kind == "ends_turn":
        return _per_answer(lambda answer, reference, ended: float(ended))
    if reward.kind == "code":
        return _code(reward.argument or "")
    return _judge(reward.argument or "")


def checked_scores(reward: Reward, score: Score, batch: Completions) -> list[float | None]:
    """`score(batch)`, held to one number (or None) per answer; a reward that raises or returns something else is a
    RewardError naming the reward and the first record it fails on."""
    try:
        values = score(batch)
    except Exception as exc:  # noqa: BLE001 - any error in a reward is reported with the record that caused it
        failing = _first_failing(score, batch)
        raise RewardError(f"reward {reward.label} raised {type(exc).__name__} on {failing}: {exc}",
                          "fix the reward (or the record), then resume: tuneforge train --resume RUN_DIR") from None
    if not isinstance(values, Sequence) or len(values) != len(batch.answers):
        raise RewardError(f"reward {reward.label} returned {type(values).__name__} for {len(batch.answers)} answers",
                          "a reward returns a list with one number (or None) per completion")
    for value, source in zip(values, batch.sources, strict=True):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RewardError(f"reward {reward.label} returned {value!r} on {source}", "a reward returns numbers (or None)")
    return [None if value is None else float(value) for value in values]


def _first_failing(score: Score, batch: Completions) -> str:
    for index, source in enumerate(batch.sources):
        try:
            score(batch.one(index))
        except Exception:  # noqa: BLE001 - looking for the record that fails
            return source
    return f"the batch of {', '.join(batch.sources)}"


def require_allowed(rewards: Sequence[Reward], allow_code: bool) -> None:
    """A code reward runs the person's own Python file: refused unless they allowed it."""
    code = [reward.label for reward in rewards if reward.kind == "code"]
    if code and not allow_code:
        raise ConfigError(f"reward {code[0]} runs the Python code in that file, which needs your go-ahead",
                          "add --allow-code (allow_code: true in a config) if you trust the file")
