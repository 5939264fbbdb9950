"""Moonshine's tokenizer.bin: the length-prefixed format, and decoding ids to text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from providers.stt.moonshine_model import Tokenizer, TokenizerError, token_budget

SPACE = "▁".encode()


def _entry(piece: bytes) -> bytes:
    """One token as tokenizer.bin stores it."""
    n = len(piece)
    if n == 0:
        return b"\x00"
    if n < 128:
        return bytes([n]) + piece
    return bytes([n % 128 + 128, n // 128]) + piece


def _file(pieces: list[bytes]) -> bytes:
    return b"".join(_entry(p) for p in pieces)


SPECIALS = [b"<unk>", b"<s>", b"</s>"]


def test_one_and_two_byte_lengths_and_empty_tokens_are_read() -> None:
    long = b"x" * 300  # needs the two-byte length: 300 = 2 * 128 + 44
    pieces = [*SPECIALS, b"", SPACE + b"hello", long, b"!"]
    tok = Tokenizer.parse(_file(pieces))
    assert tok.pieces == pieces


def test_decode_drops_special_tokens_and_turns_the_marker_into_spaces() -> None:
    tok = Tokenizer.parse(_file([*SPECIALS, SPACE + b"Front", SPACE + b"le", b"ft", b"."]))
    assert tok.decode([1, 3, 4, 5, 6, 2]) == "Front left."
    assert tok.decode([0, 99_999]) == ""  # <unk> and ids past the vocabulary are dropped


def test_a_character_split_over_byte_tokens_is_joined_before_decoding() -> None:
    e_acute = "é".encode()  # two bytes, as two byte tokens
    tok = Tokenizer.parse(_file([*SPECIALS, SPACE + b"caf", e_acute[:1], e_acute[1:]]))
    assert tok.decode([3, 4, 5]) == "café"
    assert tok.decode([3, 4]) == "caf\ufffd"  # half a character: replaced, never an exception


@pytest.mark.parametrize(
    "data",
    [_file(SPECIALS) + b"\x05ab", _file(SPECIALS) + b"\x85", _file(SPECIALS[:2])],
    ids=["token cut short", "length cut short", "too few tokens"],
)
def test_a_damaged_file_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(TokenizerError):
        Tokenizer.parse(data)


def test_the_token_cap_grows_with_the_audio() -> None:
    assert token_budget(16_000) == 10 + 7  # 6.5 tokens a second, rounded up, plus the margin
    assert token_budget(10 * 16_000) == 10 + 65


SHIPPED = importlib.util.find_spec("moonshine_cpp")


@pytest.mark.skipif(SHIPPED is None, reason="moonshine-cpp is not installed")
def test_the_shipped_vocabulary() -> None:
    assert SHIPPED is not None and SHIPPED.submodule_search_locations
    path = Path(next(iter(SHIPPED.submodule_search_locations))) / "models" / "base-en" / "tokenizer.bin"
    tok = Tokenizer.load(path)
    assert len(tok.pieces) == 32_000
    assert tok.pieces[:3] == SPECIALS
    assert tok.pieces[3:259] == [bytes([b]) for b in range(256)]  # ids 3-258: the raw bytes
    the = tok.pieces.index(SPACE + b"the")
    assert tok.decode([1, the, 2]) == "the"
