"""The organism's tokenizer: one token per word, whole number, punctuation mark or newline.

Defined in code, its vocabulary is every piece of the generated corpus. Numbers are whole tokens
(0..MAX_NUMBER) rather than digits: each worked step is then one lookup in a small fact table,
which a ~1M-parameter model memorises in minutes, where digit tokens would need carrying.
Saved with the model, so `AutoTokenizer.from_pretrained(directory)` loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<unk>", "<bos>", "<eos>", "<pad>")
SPACE = "\u2581"  # stands for the space before a word, so decoding restores the text exactly
PIECE = Regex(rf"{SPACE}?[A-Za-z]+|{SPACE}?\d+|{SPACE}?[^\sA-Za-z\d{SPACE}]|{SPACE}|\n")


def _pipeline(vocabulary: dict[str, int]) -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(PIECE, behavior="isolated")
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.Fuse()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", vocabulary["<bos>"])]
    )
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


@functools.lru_cache(maxsize=1)
def _splitter() -> Tokenizer:
    return _pipeline({token: index for index, token in enumerate(SPECIAL_TOKENS)})


def pieces(text: str) -> list[str]:
    """How the tokenizer splits `text` (before mapping pieces to ids)."""
    splitter = _splitter()
    normalized = splitter.normalizer.normalize_str(text)
    return [piece for piece, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized)]


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens, then every piece of `texts` in sorted order."""
    seen = sorted({piece for text in texts for piece in pieces(text)})
    vocabulary = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *seen])}
    return PreTrainedTokenizerFast(
        tokenizer_object=_pipeline(vocabulary),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
