"""Measurements the output-level grader decides on: fluency, degeneration and relevance to the prompt.

Text statistics need nothing but the text. Two models sharpen them: a sentence embedder
(all-MiniLM-L6-v2, from the hub or the PyPI copy, see `sfn.eval.embedder`) for relevance, and an
optional reference language model (the undamaged base) whose mean token log-likelihood measures fluency.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

import torch

from sfn.eval.embedder import EmbedderFiles, find_embedder

WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
TOKEN = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:[.,]\d+)*|[^\sA-Za-z\d]")
# Characters ordinary prose and math use; anything else (control characters, stray scripts,
# byte-fallback debris) counts toward `symbol_share`.
ORDINARY = re.compile(r"[A-Za-z0-9\s.,;:!?'\"()\[\]{}+\-*/=<>%$#&@^_|\\~`’“”–—…°×÷]")
# The statement of the answer ("The final answer is 9.", "\\boxed{9}", "#### 9"): what is left is the
# reasoning, which level IV requires to be about the prompt.
ANSWER_STATEMENT = re.compile(r"(?i)\bfinal answer\b[^.\n]*|\\boxed\{[^{}]*\}|####[^\n]*")
STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "if", "then", "so", "of", "to", "in", "on", "at", "by", "for", "with", "from", "into", "about", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "there", "their", "they", "them", "he", "she", "his", "her", "we", "our", "you", "your", "i", "my", "me", "not", "no", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could", "should", "may", "might", "must", "what", "which", "who", "whom", "how", "when", "where", "why", "all", "any", "each", "every", "some", "many", "much", "more", "most", "other", "such", "than", "too", "very", "just", "also", "only", "own", "same", "how", "per", "after", "before", "over", "under", "again", "further", "once", "here", "both", "few", "nor", "out", "off", "up", "down", "between", "through", "during"]
)


def words(text: str) -> list[str]:
    return [word.lower() for word in WORD.findall(text)]


def text_tokens(text: str) -> list[str]:
    """The text's words, numbers and punctuation marks, lower-cased: what the degeneration statistics count."""
    return [token.lower() for token in TOKEN.findall(text)]


def distinct_ratio(tokens: list[str], n: int) -> float | None:
    """Unique n-grams over all n-grams: near 1 for varied text, near 0 for loops."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_ngram_share(tokens: list[str], n: int = 3) -> float:
    """Share of n-grams that already occurred earlier in the same output (loops score near 1)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def longest_repeat(tokens: list[str]) -> int:
    """Length in tokens of the longest span that occurs at least twice (binary search on length)."""

    def repeats(length: int) -> bool:
        seen = set()
        for start in range(len(tokens) - length + 1):
            gram = tuple(tokens[start : start + length])
            if gram in seen:
                return True
            seen.add(gram)
        return False

    low, high = 0, max(len(tokens) - 1, 0)
    while low < high:
        middle = (low + high + 1) // 2
        if repeats(middle):
            low = middle
        else:
            high = middle - 1
    return low


@functools.lru_cache(maxsize=1)
def english_lexicon() -> frozenset[str] | None:
    """Whole English words from the MiniLM WordPiece vocabulary (about 20k), None if no verified copy is found."""
    files = find_embedder()
    if files is None:
        return None
    vocabulary = (files.directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return frozenset(token for token in vocabulary if token.isalpha() and token.isascii())


def text_statistics(prompt: str, output: str) -> dict[str, Any]:
    """Degeneration and lexical-relevance statistics of `output` (no models needed)."""
    output_words = words(output)
    tokens = text_tokens(output)
    characters = [character for character in output if not character.isspace()]
    lexicon = english_lexicon()
    output_numbers = NUMBER.findall(output)
    stats: dict[str, Any] = {
        "words": len(output_words) + len(output_numbers),  # "7 + 5 = 12" is a complete answer
        "distinct_1": distinct_ratio(tokens, 1),
        "distinct_2": distinct_ratio(tokens, 2),
        "longest_repeat_share": longest_repeat(tokens) / len(tokens) if tokens else None,
        "symbol_share": (
            sum(not ORDINARY.match(character) for character in characters) / len(characters) if characters else None
        ),
        # "the the", "Write Write": adjacent repeats that fluent text almost never has.
        "repeated_word_share": (
            sum(a == b for a, b in itertools.pairwise(output_words)) / (len(output_words) - 1)
            if len(output_words) > 1
            else None
        ),
        "nonword_share": (
            sum(word not in lexicon for word in output_words) / len(output_words) if lexicon and output_words else None
        ),
    }
    prompt_numbers = set(NUMBER.findall(prompt))
    stats["number_overlap"] = len(prompt_numbers & set(output_numbers)) / len(prompt_numbers) if prompt_numbers else None
    key_terms = {word for word in words(prompt) if len(word) > 3 and word not in STOPWORDS}
    stats["term_overlap"] = len(key_terms & set(output_words)) / len(key_terms) if key_terms else None
    # The same overlaps without the answer statement: "Lucy has 5 cups now. The final answer is 9."
    # shares the number 9 with a question about Ben's 9 coins only through its answer.
    reasoning = ANSWER_STATEMENT.sub(" ", output)
    reasoning_words, reasoning_numbers = words(reasoning), NUMBER.findall(reasoning)
    stats["reasoning_words"] = len(reasoning_words) + len(reasoning_numbers)
    stats["reasoning_number_overlap"] = (
        len(prompt_numbers & set(reasoning_numbers)) / len(prompt_numbers) if prompt_numbers else None
    )
    stats["reasoning_term_overlap"] = len(key_terms & set(reasoning_words)) / len(key_terms) if key_terms else None
    return stats


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length); the weights load on first use."""

    def __init__(self, files: EmbedderFiles):
        self.files = files
        self._loaded: tuple[Any, Any] | None = None

    @classmethod
    def bundled(cls) -> SentenceEmbedder | None:
        files = find_embedder()
        return cls(files) if files else None

    def record(self) -> dict[str, Any]:
        return self.files.record()

    @property
    def tokenizer(self) -> Any:
        return self._load()[0]

    @property
    def model(self) -> Any:
        return self._load()[1]

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModel, AutoTokenizer

            directory = self.files.directory
            self._loaded = AutoTokenizer.from_pretrained(directory), AutoModel.from_pretrained(directory).eval()
        return self._loaded

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarity(self, prompt: str, output: str) -> float:
        vectors = self.embed([prompt, output])
        return float(vectors[0] @ vectors[1])


class ReferenceScorer:
    """Mean log-likelihood per output token under a reference LM (e.g. the undamaged base model)."""

    def __init__(self, model: Any, tokenizer: Any, max_output_tokens: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.max_output_tokens = max_output_tokens

    @torch.inference_mode()
    def mean_logprob(self, prompt: str, output: str) -> float | None:
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        output_ids = self.tokenizer(output, add_special_tokens=False)["input_ids"][: self.max_output_tokens]
        if not output_ids:
            return None
        ids = torch.tensor([prompt_ids + output_ids], device=self.model.device)
        logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(output_ids, device=logprobs.device)
        return float(logprobs.gather(1, targets[:, None]).mean())
