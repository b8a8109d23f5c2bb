"""The gates a drafted pair must pass to train: grounded in its chunk, supported, not giving itself
away, not too long, not a repeat. Each drop names its gate, and the report counts them.

The gates are lexical on purpose: they are fast, need no second model, and a person can see why
a pair failed. They are judged per fact (a drafted question and its paraphrases share one answer
and one evidence quote) and then per wording:

- fact: the answer and the evidence are present and short; the evidence occurs in the chunk
  (case, whitespace, quote marks and dashes normalised; an elision "…" may join quoted parts in
  order); the answer is supported by the evidence — every number in it appears there, and at least
  SUPPORTED_SHARE of its other words do (a word matches an evidence word it is close to, so
  "keepers" matches "keeper").
- wording: the question is present and short; it does not contain the answer's words; it does not
  repeat a kept pair (question and answer each at rapidfuzz token-sort ratio ≥ DUPLICATE_SCORE, with
  the same numbers in the question). A fact whose first question repeats a kept pair is dropped
  whole, so one fact cannot sit on both sides of the split.
"""

from __future__ import annotations

import re
import unicodedata

from .drafts import Pair

EMPTY, TOO_LONG, EVIDENCE_NOT_IN_CHUNK = "empty", "too long", "evidence not in chunk"
UNSUPPORTED, ANSWER_IN_QUESTION, NEAR_DUPLICATE = "answer not in evidence", "answer in question", "near duplicate"
MAX_QUESTION_WORDS, MAX_ANSWER_WORDS, MAX_EVIDENCE_WORDS = 40, 50, 120
SUPPORTED_SHARE = 0.6
WORD_MATCH_SCORE = 80
"""rapidfuzz ratio at which two words count as the same word inflected (keeper/keepers, paint/painted)."""
DUPLICATE_SCORE = 90
"""token-sort ratio at which two questions ask the same thing ("When was the bridge built?" twice: 98;
"When does the museum open?" against "… close?": 75)."""
STOPWORDS = frozenset("""a an the and or but of to in on at by for from with as is are was were be been being it its this that
these those there here which who whom whose what when where why how do does did has have had not no yes than then so such
into onto over under about after before during between per via i you he she we they them his her their our your my me us""".split())


def normalise(text: str) -> str:
    """Text compared by content: case-folded, quote marks and dashes made plain, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\u2018\u2019\u201b\u2032]", "'", text)
    text = re.sub(r"[\u201c\u201d\u201f\u2033]", '"', text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return re.sub(r"\s+", " ", text).strip()


def words(text: str) -> list[str]:
    """The words of `text`, normalised."""
    return re.findall(r"\w+", normalise(text))


def content_words(text: str) -> list[str]:
    """The words that carry meaning: not stopwords."""
    return [word for word in words(text) if word not in STOPWORDS]


def evidence_in_chunk(evidence: str, chunk: str) -> bool:
    """Whether the quote occurs in the chunk; parts joined by an elision ("…", "...") must occur in order."""
    haystack = normalise(chunk)
    position = 0
    for part in re.split(r"\s*(?:\.\.\.|\u2026)\s*", normalise(evidence)):
        part = part.strip(" \"'.,;:!?()[]")
        if not part:
            continue
        found = haystack.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return position > 0


def evidence_span(evidence: str, chunk: str) -> tuple[int, int] | None:
    """Where the quote sits in the chunk's own text (start, end), for highlighting; None when it is not there."""
    spans = []
    start = 0
    for part in re.split(r"\s*(?:\.\.\.|\u2026)\s*", evidence):
        part_words = re.findall(r"\w+", unicodedata.normalize("NFKC", part))
        if not part_words:
            continue
        found = re.compile(r"\W+".join(map(re.escape, part_words)), re.IGNORECASE).search(chunk, start)
        if found is None:
            return None
        spans.append(found.span())
        start = found.end()
    return (spans[0][0], spans[-1][1]) if spans else None


def answer_supported(answer: str, evidence: str) -> bool:
    """Whether the evidence states the answer: all its numbers, and SUPPORTED_SHARE of its other content words."""
    from rapidfuzz import fuzz

    said = set(words(evidence))
    claimed = content_words(answer)
    if not claimed:
        return False  # "Yes." or "It is." cannot be checked against the document
    numbers = [word for word in claimed if any(ch.isdigit() for ch in word)]
    if any(number not in said for number in numbers):
        return False
    others = [word for word in claimed if word not in numbers]
    if not others:
        return True
    matched = sum(1 for word in others if word in said or any(fuzz.ratio(word, seen) >= WORD_MATCH_SCORE for seen in said))
    return matched >= SUPPORTED_SHARE * len(others)


def answer_in_question(question: str, answer: str) -> bool:
    """Whether the question already holds every content word of the answer (it gives itself away)."""
    claimed = set(content_words(answer))
    return bool(claimed) and claimed <= set(words(question))


def fact_failure(pair: Pair, chunk: str) -> str | None:
    """Why the fact behind `pair` (its answer and evidence) cannot train, or None."""
    if not pair.answer or not pair.evidence:
        return EMPTY
    if len(words(pair.answer)) > MAX_ANSWER_WORDS or len(words(pair.evidence)) > MAX_EVIDENCE_WORDS:
        return TOO_LONG
    if not evidence_in_chunk(pair.evidence, chunk):
        return EVIDENCE_NOT_IN_CHUNK
    if not answer_supported(pair.answer, pair.evidence):
        return UNSUPPORTED
    return None


def wording_failure(pair: Pair) -> str | None:
    """Why this wording of the question cannot train (before the duplicate check), or None."""
    if not words(pair.question):
        return EMPTY
    if len(words(pair.question)) > MAX_QUESTION_WORDS:
        return TOO_LONG
    if answer_in_question(pair.question, pair.answer):
        return ANSWER_IN_QUESTION
    return None


def apply_gates(pairs: list[Pair], chunk_texts: list[str]) -> None:
    """Set each pair's `gate`: the reason it fails, or None; in order, so earlier pairs win duplicates."""
    kept = KeptPairs()
    fact_dropped: dict[str, str] = {}
    for pair in pairs:
        if pair.fact in fact_dropped:
            pair.gate = fact_dropped[pair.fact]
            continue
        reason = fact_failure(pair, chunk_texts[pair.chunk]) if pair.variant == 0 else None
        if reason is not None:
            fact_dropped[pair.fact] = pair.gate = reason
            continue
        reason = wording_failure(pair) or (NEAR_DUPLICATE if kept.repeated(pair) else None)
        if reason == NEAR_DUPLICATE and pair.variant == 0:  # the fact is already in the set: its other wordings go too
            fact_dropped[pair.fact] = reason
        pair.gate = reason
        if reason is None:
            kept.add(pair)


class KeptPairs:
    """The pairs kept so far, normalised once, for the duplicate check."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.answers: list[str] = []
        self.numbers: list[list[str]] = []

    def add(self, pair: Pair) -> None:
        """Remember a kept pair."""
        self.questions.append(" ".join(words(pair.question)))
        self.answers.append(" ".join(words(pair.answer)))
        self.numbers.append(_numbers(pair.question))

    def repeated(self, pair: Pair) -> bool:
        """Whether a kept pair asks the same with the same answer: questions and answers each at least
        DUPLICATE_SCORE alike, and the same numbers in the questions ("locker 3" is not "locker 4")."""
        from rapidfuzz import fuzz, process

        question, answer, numbers = " ".join(words(pair.question)), " ".join(words(pair.answer)), _numbers(pair.question)
        alike = process.extract(question, self.questions, scorer=fuzz.token_sort_ratio, score_cutoff=DUPLICATE_SCORE, limit=None)
        return any(self.numbers[index] == numbers and fuzz.token_sort_ratio(answer, self.answers[index]) >= DUPLICATE_SCORE
                   for _, _, index in alike)


def _numbers(text: str) -> list[str]:
    return [word for word in words(text) if any(ch.isdigit() for ch in word)]
