"""Turn normalised examples into token ids and labels, split train/eval, and measure them.

Chat examples are rendered through the model's own chat template; only assistant turns
are trained (labels), and each turn's end-of-turn token is inside the trained span so
the model learns to stop. Documents (continued pre-training) are trained on every token
and cut into `max_length` blocks instead of being truncated.
"""

from __future__ import annotations

import random
import re
import statistics
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..chat_templates import AUTO, END_OF_TURN_TOKENS, apply_chat_template_setting, end_of_turn_fix, end_of_turn_ids
from ..errors import DataError
from ..methods import method_spec
from .formats import MAX_REPORTED_PROBLEMS, LoadedData, load_run_data
from .records import Example

if TYPE_CHECKING:
    from ..config import RunConfig

IGNORE_INDEX = -100
"""Label value the loss ignores (PyTorch's cross-entropy default)."""
MIN_EXAMPLES_FOR_SPLIT = 10
"""Below this many examples nothing is held out: every fact is needed for training."""

PLAIN_TEXT_SHAPES = ("text", "documents")
"""Shapes trained as running text, with no chat template and no turns to end."""

@dataclass
class TokenizedExample:
    """Token ids with their labels (IGNORE_INDEX where no loss is computed)."""

    source: str
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    reasoning_dropped: bool = False
    """The conversation has a reasoning trace the chat template does not show (so it is not learned)."""

    @property
    def trained_tokens(self) -> int:
        """How many positions contribute to the loss."""
        return sum(label != IGNORE_INDEX for label in self.labels)


@dataclass
class DataStats:
    """What `tuneforge data check` reports about a prepared dataset."""

    shape: str
    records: int
    train_examples: int
    eval_examples: int
    max_length: int
    token_lengths: list[int] = field(repr=False, default_factory=list)
    truncated: int = 0
    dropped: int = 0
    """Examples left with no trained token after truncation (not used for training)."""
    trained_tokens: int = 0
    total_tokens: int = 0
    end_of_turn_trained: bool = False
    reasoning_dropped: int = 0
    """Conversations whose reasoning traces the chat template drops."""

    @property
    def answer_share(self) -> float:
        """The share of training tokens that are trained (the answers)."""
        return self.trained_tokens / max(self.total_tokens, 1)

    def length_summary(self) -> dict[str, int]:
        """Min, median, 95th percentile and max token length."""
        lengths = sorted(self.token_lengths) or [0]
        return {
            "min": lengths[0],
            "median": int(statistics.median(lengths)),
            "p95": lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))],
            "max": lengths[-1],
        }

    def histogram(self, bins: int = 8) -> list[tuple[int, int, int]]:
        """(low, high, count) buckets of token length, for a chart."""
        if not self.token_lengths:
            return []
        low, high = min(self.token_lengths), max(self.token_lengths)
        width = max(1, -(-(high - low + 1) // bins))
        counts = [0] * bins
        for length in self.token_lengths:
            counts[min(bins - 1, (length - low) // width)] += 1
        return [(low + i * width, low + (i + 1) * width - 1, c) for i, c in enumerate(counts)]


@dataclass
class PreparedData:
    """Tokenized train and eval splits plus their statistics."""

    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    stats: DataStats


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINK_BLOCK = re.compile(f"{re.escape(THINK_OPEN)}(.*?){re.escape(THINK_CLOSE)}", re.DOTALL)
TOOLS_HINT = "train tool use on a model whose template renders them, such as Qwen2.5, Qwen3 or Llama 3.1 and later"
ENCODE_BATCH = 512
"""Conversations tokenized per call: the fast tokenizer encodes a batch in parallel, in Rust."""


@dataclass
class RenderedChat:
    """A conversation as the chat template renders it, the character spans that are trained, and
    whether a reasoning trace of it did not make it into the text."""

    example: Example
    text: str
    spans: list[tuple[int, int]]
    reasoning_dropped: bool = False


def tokenize_chat(example: Example, tokenizer: Any, max_length: int, train_reasoning: bool = True) -> TokenizedExample:
    """Render messages through the chat template; label only the assistant turns the data trains."""
    return _encode_chats([render_chat(example, tokenizer, train_reasoning)], tokenizer, max_length)[0]


def _encode_chats(rendered: list[RenderedChat], tokenizer: Any, max_length: int) -> list[TokenizedExample]:
    """Rendered conversations tokenized a batch at a time, labelled inside their trained spans."""
    out = []
    for start in range(0, len(rendered), ENCODE_BATCH):
        batch = rendered[start:start + ENCODE_BATCH]
        encoded = tokenizer([chat.text for chat in batch], add_special_tokens=False, return_offsets_mapping=True)
        for chat, ids, offsets in zip(batch, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            labels = _labels(ids, offsets, chat.spans)
            out.append(TokenizedExample(chat.example.source, ids[:max_length], labels[:max_length], len(ids) > max_length,
                                        chat.reasoning_dropped))
    return out


def render_chat(example: Example, tokenizer: Any, train_reasoning: bool = True) -> RenderedChat:
    """The conversation as the chat template renders it (with the example's tools), and the character
    spans of its trained assistant turns: their answers, tool calls and — with `train_reasoning`, where
    the template shows them — their reasoning traces."""
    messages = example.messages or []
    plain = [{key: value for key, value in m.items() if key != "weight"} for m in messages]

    def render(upto: list[dict[str, Any]], **options: Any) -> str:
        return tokenizer.apply_chat_template(upto, tools=example.tools, tokenize=False, **options)

    text = render(plain)
    unseen = [name for tool in example.tools or [] if isinstance(name := tool.get("function", tool).get("name"), str) and name not in text]
    if unseen:
        raise TemplateRefusal(f"the model's chat template does not show the tools it is given (no trace of {unseen[0]}); {TOOLS_HINT}")
    spans = _assistant_spans(plain, [m.get("weight", 1) != 0 for m in messages], text, render, tokenizer)
    traces = [trace for m in plain if m["role"] == "assistant" for trace in _reasoning_traces(m)]
    if not train_reasoning:
        spans = _without(spans, [_trace_block(text, trace) for trace in traces if trace in text])
    return RenderedChat(example, text, spans, reasoning_dropped=any(trace not in text for trace in traces))


def _reasoning_traces(message: dict[str, Any]) -> list[str]:
    """An assistant turn's thinking, as it shows in a rendering that keeps it: its `reasoning_content`
    (in whatever tags the template writes), and each whole <think>…</think> block inside its content."""
    traces = [message["reasoning_content"].strip()] if message.get("reasoning_content") else []
    return traces + [block.group(0) for block in THINK_BLOCK.finditer(message["content"]) if block.group(1).strip()]


def _trace_block(text: str, trace: str) -> tuple[int, int]:
    """Where a reasoning trace sits in the rendered text, its <think> tags included when the template writes them."""
    start = text.find(trace)
    end = start + len(trace)
    opening = text.rfind(THINK_OPEN, 0, start)
    if opening >= 0 and not text[opening + len(THINK_OPEN):start].strip():
        start = opening
    closing = text.find(THINK_CLOSE, end)
    if closing >= 0 and not text[end:closing].strip():
        end = closing + len(THINK_CLOSE)
    return start, end


def _without(spans: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`spans` with the `holes` cut out of them."""
    for hole_start, hole_end in holes:
        spans = [piece for start, end in spans
                 for piece in ((start, min(end, hole_start)), (max(start, hole_end), end)) if piece[0] < piece[1]]
    return spans


def _labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's id where it overlaps a trained span, else IGNORE_INDEX (spans and offsets both run left to right)."""
    labels, span = [], 0
    for token, (start, end) in zip(ids, offsets, strict=True):
        while span < len(spans) and spans[span][1] <= start:
            span += 1
        inside = span < len(spans) and start < spans[span][1] and end > spans[span][0]
        labels.append(token if inside else IGNORE_INDEX)
    return labels


def _assistant_spans(messages: list[dict[str, Any]], trained: list[bool], text: str, render: Any,
                     tokenizer: Any) -> list[tuple[int, int]]:
    """Character spans of each trained assistant turn in `text`, end-of-turn marker included.

    Rendering the conversation up to each turn gives exact spans when the template is
    prefix-stable (ChatML, Llama 3, Gemma, Mistral). Templates that rewrite earlier turns
    fall back to locating the content and the end-of-turn marker that follows it.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:index], add_generation_prompt=True) if index else ""
        last = index == len(messages) - 1  # the whole conversation: rendered already
        upto = text if last else render(messages[: index + 1])
        if index and text.startswith(upto) and upto.startswith(prompt) and len(prompt) >= cursor:
            span = (len(prompt), len(upto))
        else:
            # Thinking templates (Qwen3) may strip an earlier turn's <think> block: look for the answer itself.
            answer = THINK_BLOCK.sub("", message["content"]).strip() or message["content"]
            start = text.find(answer, cursor) if answer else -1
            if start < 0:
                raise TemplateRefusal("the model's chat template drops an assistant turn of this conversation, "
                                      "or rewrites earlier turns so that it cannot be located")
            span = (start, _end_of_turn_after(text, start + len(answer), tokenizer))
        cursor = span[1]
        unseen = [call["function"]["name"] for call in message.get("tool_calls", []) if call["function"]["name"] not in text[span[0]:span[1]]]
        if unseen:
            raise TemplateRefusal(f"the model's chat template does not render tool calls (the call of {unseen[0]} is missing); {TOOLS_HINT}")
        if trained[index]:
            spans.append(span)
    return spans


def _end_of_turn_after(text: str, position: int, tokenizer: Any) -> int:
    """Where the end-of-turn marker right after `position` ends (or `position` if none)."""
    rest = text[position:]
    stripped = rest.lstrip(" ")
    markers = [tokenizer.eos_token or "", *END_OF_TURN_TOKENS]
    for marker in markers:
        if marker and stripped.startswith(marker):
            return position + (len(rest) - len(stripped)) + len(marker)
    return position


def tokenize_document(example: Example, tokenizer: Any, max_length: int) -> list[TokenizedExample]:
    """Tokenize a document (every token trained) into blocks of at most `max_length`."""
    ids = tokenizer(example.text or "", add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return [
        TokenizedExample(f"{example.source}#{i // max_length}", ids[i : i + max_length], ids[i : i + max_length])
        for i in range(0, len(ids), max_length)
    ]


class TemplateRefusal(ValueError):
    """The model's chat template cannot render a conversation (its roles, their order)."""


def tokenize_examples(examples: list[Example], tokenizer: Any, max_length: int, train_reasoning: bool = True) -> list[TokenizedExample]:
    """Tokenize every example (chat or document) for training; a DataError lists the conversations
    the model's chat template refuses (e.g. roles that do not alternate), each with its FILE:LINE."""
    from jinja2 import TemplateError

    out: list[TokenizedExample] = []
    problems: list[str] = []
    rendered: list[RenderedChat] = []
    for example in examples:
        if example.messages is None:
            out.extend(tokenize_document(example, tokenizer, max_length))
            continue
        try:
            rendered.append(render_chat(example, tokenizer, train_reasoning))
        except (TemplateError, TemplateRefusal) as exc:
            problems.append(f"{example.source}: {exc}")
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS] + ([f"… and {len(problems) - MAX_REPORTED_PROBLEMS} more"] if len(problems) > MAX_REPORTED_PROBLEMS else [])
        raise DataError("the model's chat template refuses these conversations:\n" + "\n".join(shown),
                        "many templates need user and assistant turns to alternate, starting with the user "
                        "(after an optional system message); fix the records or pick another model")
    return out + _encode_chats(rendered, tokenizer, max_length)


def prompt_messages(example: Example) -> list[dict[str, Any]]:
    """What a sampling method asks: the conversation before its last answer (a record of prompts alone: all of it)."""
    messages = example.messages or []
    return messages[:-1] if messages and messages[-1]["role"] == "assistant" else list(messages)


def reference_answer(example: Example) -> str | None:
    """The answer a record gives to its prompt (a sampling method's reference), or None for a prompt alone."""
    messages = example.messages or []
    return messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None


def sampled_shapes(examples: list[Example], tokenizer: Any, answer_tokens: int, max_length: int) -> list[TokenizedExample]:
    """Each prompt as a sampling method trains on it at most: its tokens (the chat template's, ready for the answer)
    followed by a full budget of answer tokens, which are trained; what the planner and `data check` measure.
    A prompt longer than `max_length` leaves no room for an answer and is marked truncated."""
    eot = sorted(end_of_turn_ids(tokenizer)) or [tokenizer.eos_token_id or 0]
    out = []
    for example in examples:
        prompt = tokenizer.apply_chat_template(prompt_messages(example), tools=example.tools, add_generation_prompt=True,
                                               tokenize=True, return_dict=True)["input_ids"]
        room = max(0, min(answer_tokens, max_length - len(prompt)))
        answer = [eot[0]] * room  # stands for the sampled answer, ending its turn
        out.append(TokenizedExample(example.source, (prompt + answer)[:max_length],
                                    ([IGNORE_INDEX] * len(prompt) + answer)[:max_length], len(prompt) + answer_tokens > max_length))
    return out


def trained_segments(example: TokenizedExample, tokenizer: Any) -> list[tuple[str, bool]]:
    """The example's text as runs of trained (True) and masked (False) tokens, to show what is learned."""
    runs: list[tuple[list[int], bool]] = []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        trained = label != IGNORE_INDEX
        if runs and runs[-1][1] == trained:
            runs[-1][0].append(token)
        else:
            runs.append(([token], trained))
    return [(tokenizer.decode(ids), trained) for ids, trained in runs]


def split_examples(examples: list[Example], eval_split: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out `eval_split` of the examples (at least one), reproducibly for a seed."""
    if eval_split <= 0 or len(examples) < MIN_EXAMPLES_FOR_SPLIT:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(examples) * eval_split))
    held_out = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held_out]
    return train, [e for i, e in enumerate(examples) if i in held_out]


def train_and_eval(loaded: LoadedData, eval_loaded: LoadedData | None, eval_split: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
    """A run's training and held-out examples: eval_data's when it has some, else `eval_split` of its data."""
    if eval_loaded is not None:
        return list(loaded.examples), list(eval_loaded.examples)
    return split_examples(loaded.examples, eval_split, seed)


def run_split(config: RunConfig, check: bool = True) -> tuple[list[Example], list[Example]]:
    """A run's training and held-out examples, split as its training splits them (an `eval_split` left open
    settled as training settles it); with `check`, a DataError lists every problem in the data."""
    from ..settle import settle_eval_split  # settle reads this module's shapes

    loaded, eval_loaded = load_run_data(config, check)
    eval_split = settle_eval_split(config, len(loaded.examples), loaded.shape).eval_split
    return train_and_eval(loaded, eval_loaded, eval_split, config.seed)


@dataclass(frozen=True)
class DataRecipe:
    """How a run turns its records into training examples: the RunConfig settings that tokenizing, masking and
    splitting read, as one value."""

    max_length: int = 512
    eval_split: float = 0.1
    """The share held out (ignored when eval data is given)."""
    seed: int = 42
    """The split's shuffle."""
    train_reasoning: bool = True
    """Reasoning traces are trained (off: context only)."""
    chat_template: str = AUTO
    """The run's chat template setting (chat_templates.py)."""
    bad_answers: bool = False
    """Answers labelled bad are kept, for a method that learns from them (KTO); otherwise they are left out, since the
    other methods would learn to give them."""
    sampled_tokens: int = 0
    """For a method that samples its own answers (GRPO): the most tokens an answer may take. Each record is then its
    prompt, measured with an answer of that many tokens, the longest it can train on (0: the data's own answers)."""

    @classmethod
    def from_config(cls, config: RunConfig) -> DataRecipe:
        """The recipe a run's settings give (an `eval_split` left open must be settled first; None is taken as 0.1)."""
        split = config.eval_split if config.eval_split is not None else 0.1
        spec = method_spec(config.method)
        return cls(config.max_length, split, config.seed, config.train_reasoning, config.chat_template,
                   spec.labelled_data, config.max_completion_length if spec.samples_answers else 0)

    def whole(self) -> DataRecipe:
        """The same recipe holding nothing out: for examples that only train (replayed and teacher answers)."""
        return replace(self, eval_split=0.0)


def prepare(loaded: LoadedData, tokenizer: Any, recipe: DataRecipe, eval_loaded: LoadedData | None = None) -> PreparedData:
    """Tokenize, mask and split a loaded dataset as `recipe` says; refuse it when nothing would be trained, or when
    chat data would never train the end of a turn (the model would not learn to stop)."""
    loaded.raise_for_problems()
    if eval_loaded is not None:
        eval_loaded.raise_for_problems()
    max_length = recipe.max_length
    train_examples, eval_examples = train_and_eval(loaded, eval_loaded, recipe.eval_split, recipe.seed)
    if not recipe.bad_answers:
        train_examples = [e for e in train_examples if e.label is not False]
        eval_examples = [e for e in eval_examples if e.label is not False]
    if loaded.shape not in PLAIN_TEXT_SHAPES:
        apply_chat_template_setting(tokenizer, recipe.chat_template)
    if recipe.sampled_tokens:
        train_all, eval_all = (sampled_shapes(examples, tokenizer, recipe.sampled_tokens, max_length)
                               for examples in (train_examples, eval_examples))
    else:
        train_all = tokenize_examples(train_examples, tokenizer, max_length, recipe.train_reasoning)
        eval_all = tokenize_examples(eval_examples, tokenizer, max_length, recipe.train_reasoning)
    train = [t for t in train_all if t.trained_tokens]
    evaluation = [t for t in eval_all if t.trained_tokens]
    everything = train_all + eval_all
    eot = end_of_turn_ids(tokenizer)
    stats = DataStats(
        shape=loaded.shape,
        records=len(loaded.examples) + (len(eval_loaded.examples) if eval_loaded else 0),
        train_examples=len(train),
        eval_examples=len(evaluation),
        max_length=max_length,
        token_lengths=[len(t.input_ids) for t in everything],
        truncated=sum(t.truncated for t in everything),
        dropped=len(everything) - len(train) - len(evaluation),
        trained_tokens=sum(t.trained_tokens for t in train),
        total_tokens=sum(len(t.input_ids) for t in train),
        end_of_turn_trained=any(label in eot for t in train for label in t.labels),
        reasoning_dropped=sum(t.reasoning_dropped for t in everything),
    )
    if not train:
        raise DataError(
            f"{loaded.path}: no token of any training example would be trained "
            f"({stats.truncated} of {len(everything)} examples are cut at max_length={max_length})",
            "every example needs an assistant answer inside max_length: raise --max-length or shorten the prompts",
        )
    if loaded.shape not in PLAIN_TEXT_SHAPES and not stats.end_of_turn_trained:
        raise DataError(
            f"{loaded.path}: no training example ends its answer with a token that ends the turn, "
            "so the model would never learn to stop (its chat template writes no end-of-turn token this vocabulary has)",
            end_of_turn_fix(tokenizer),
        )
    return PreparedData(train, evaluation, stats)
