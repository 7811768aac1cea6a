"""IMDB reviews and Reuters newswires as keras.datasets gives them: word-index sequences, shuffled, marked,
filtered and cut to a vocabulary exactly as its ``load_data`` does (same arguments and defaults), then made
into a fixed-width array a model can take: padded or truncated as ``keras.utils.pad_sequences`` does
(``sequence_length``, ``padding``, ``truncating``), or one multi-hot row of ``num_words`` per sample
(``multi_hot: true``, the classic Dense-on-a-bag-of-words examples).

The ragged sequences in imdb.npz and reuters.npz are pickled object arrays; kerascli.data.pickled reads
them without unpickling. Here they are held as one flat token array plus one length per sample.
"""

from __future__ import annotations

import itertools

import numpy as np

from kerascli.config.params import Param
from kerascli.data.datasets import KerasDataset, check_features
from kerascli.data.download import RemoteFile, fetch
from kerascli.data.npyfile import load_npz_sequences
from kerascli.errors import DataError

PARAMS = {
    "num_words": Param("int", None, min=1, nullable=True, doc="keep the most frequent words below this index"),
    "skip_top": Param("int", 0, min=0, doc="the most frequent words to drop (become oov_char)"),
    "maxlen": Param("int", None, min=1, nullable=True, doc="drop sequences this long or longer (as Keras)"),
    "seed": Param("int", 113, min=0, doc="of Keras' shuffle"),
    "start_char": Param("int", 1, min=0, nullable=True),
    "oov_char": Param("int", 2, min=0, nullable=True, doc="null: drop words outside the vocabulary"),
    "index_from": Param("int", 3, min=0),
    "sequence_length": Param("int", None, min=1, nullable=True,
                             doc="pad or truncate to this many steps (default: the longest sequence)"),
    "padding": Param("str", "pre", choices=("pre", "post")),
    "truncating": Param("str", "pre", choices=("pre", "post")),
    "multi_hot": Param("bool", False, doc="a 0/1 row of num_words per sample instead of a sequence"),
}


class Ragged:
    """Sequences as one flat int64 array of tokens and one length per sequence."""

    def __init__(self, tokens: np.ndarray, lengths: np.ndarray):
        self.tokens, self.lengths = tokens, lengths

    @classmethod
    def of(cls, sequences: np.ndarray, where: str) -> Ragged:
        if sequences.dtype != object or sequences.ndim != 1:
            raise DataError(f"{where}: expected one sequence (a list of word indices) per sample, got "
                            f"{sequences.dtype} {sequences.shape}")
        try:
            lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
            tokens = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{where}: a sample is not a list of whole numbers (word indices)") from None
        return cls(tokens, lengths)

    @property
    def starts(self) -> np.ndarray:
        return _starts(self.lengths)

    def sample_of_token(self) -> np.ndarray:
        """Each token's sequence."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def positions(self) -> np.ndarray:
        """Each token's place within its sequence."""
        return np.arange(len(self.tokens)) - np.repeat(self.starts, self.lengths)

    def take(self, rows: np.ndarray) -> Ragged:
        lengths = self.lengths[rows]
        gather = np.repeat(self.starts[rows] - _starts(lengths), lengths) + np.arange(int(lengths.sum()))
        return Ragged(self.tokens[gather], lengths)

    def keep_tokens(self, mask: np.ndarray) -> Ragged:
        counts = np.bincount(self.sample_of_token()[mask], minlength=len(self.lengths))
        return Ragged(self.tokens[mask], counts.astype(np.int64))


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each sequence of these lengths starts in the flat token array."""
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def keras_sequences(parts: list[tuple[Ragged, np.ndarray]], p: dict, where: str) -> list[tuple[Ragged, np.ndarray]]:
    """What keras.datasets' imdb/reuters load_data does after shuffling: the start mark and index offset,
    the ``maxlen`` filter (Keras keeps sequences shorter than maxlen), the vocabulary cut."""
    out = []
    for seqs, labels in parts:
        tokens, lengths = seqs.tokens + p["index_from"], seqs.lengths
        if p["start_char"] is not None:
            tokens, lengths = np.insert(tokens, seqs.starts, p["start_char"]), lengths + 1
        seqs = Ragged(tokens, lengths)
        if p["maxlen"]:
            kept = np.flatnonzero(seqs.lengths < p["maxlen"])
            seqs, labels = seqs.take(kept), labels[kept]
            if not len(kept):
                raise DataError(f"{where}: no sequence is shorter than maxlen {p['maxlen']}; increase maxlen")
        out.append((seqs, labels))
    num_words = p["num_words"]
    if not num_words:  # Keras: the largest index there is (which then itself counts as out of vocabulary)
        num_words = max(int(s.tokens.max()) if len(s.tokens) else 0 for s, _ in out)
    cut = []
    for seqs, labels in out:
        inside = (seqs.tokens >= p["skip_top"]) & (seqs.tokens < num_words)
        if p["oov_char"] is not None:
            seqs = Ragged(np.where(inside, seqs.tokens, p["oov_char"]), seqs.lengths)
        else:
            seqs = seqs.keep_tokens(inside)
        cut.append((seqs, labels))
    return cut


def pad(seqs: Ragged, length: int, padding: str, truncating: str) -> np.ndarray:
    """keras.utils.pad_sequences(sequences, maxlen=length, padding, truncating, value=0) as int32."""
    out = np.zeros((len(seqs.lengths), length), dtype=np.int32)
    place = seqs.positions()
    lengths = np.repeat(seqs.lengths, seqs.lengths)
    kept = np.minimum(lengths, length)
    step = place - (lengths - kept) if truncating == "pre" else place
    keep = (step >= 0) & (step < length)
    column = step + (length - kept) if padding == "pre" else step
    out[seqs.sample_of_token()[keep], column[keep]] = seqs.tokens[keep]
    return out


def multi_hot(seqs: Ragged, width: int) -> np.ndarray:
    """One row of ``width`` per sequence, 1 where a word occurs."""
    if len(seqs.tokens) and int(seqs.tokens.max()) >= width:
        raise DataError(f"word index {int(seqs.tokens.max())} does not fit a multi-hot row of num_words {width} "
                        "(is oov_char below num_words?)")
    out = np.zeros((len(seqs.lengths), width), dtype=np.uint8)
    out[seqs.sample_of_token(), seqs.tokens] = 1
    return out


def as_arrays(parts: list[tuple[Ragged, np.ndarray]], p: dict, where: str) -> list[np.ndarray]:
    if p["multi_hot"]:
        if not p["num_words"]:
            raise DataError(f"{where}: multi_hot needs num_words (the width of each row)")
        return [multi_hot(seqs, p["num_words"]) for seqs, _ in parts]
    length = p["sequence_length"] or max(1, *(int(seqs.lengths.max()) for seqs, _ in parts))
    return [pad(seqs, length, p["padding"], p["truncating"]) for seqs, _ in parts]


def shuffled(seqs: Ragged, labels: np.ndarray, rng: np.random.RandomState) -> tuple[Ragged, np.ndarray]:
    order = np.arange(len(labels))
    rng.shuffle(order)
    return seqs.take(order), labels[order]


def labels_of(a: np.ndarray, n: int, where: str) -> np.ndarray:
    if a.dtype.kind not in "iu" or a.shape != (n,):
        raise DataError(f"{where}: labels must be {n:,} whole numbers, got {a.dtype} {a.shape}")
    return a.astype(np.int64)


class Imdb(KerasDataset):
    """25,000 + 25,000 movie reviews as word indices (by frequency), labelled positive (1) or negative (0),
    as keras.datasets.imdb with its arguments; made fixed-width by ``sequence_length`` or ``multi_hot``."""

    PARAMS = PARAMS
    FILES = (RemoteFile("imdb.npz", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f", 17464789),)

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        a = load_npz_sequences(path, ["x_train", "y_train", "x_test", "y_test"])
        rng = np.random.RandomState(params["seed"])  # one generator for both splits, as Keras
        parts = []
        for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
            seqs = Ragged.of(a[x], f"{path}: {x}")
            parts.append(shuffled(seqs, labels_of(a[y], len(seqs.lengths), f"{path}: {y}"), rng))
        parts = keras_sequences(parts, params, path)
        (x_train, x_test), ((_, y_train), (_, y_test)) = as_arrays(parts, params, path), parts
        return {"train": check_features(x_train, y_train, path), "test": check_features(x_test, y_test,
                                                                                         f"{path} (test)")}


class Reuters(KerasDataset):
    """11,228 Reuters newswires as word indices, labelled by one of 46 topics, split 80/20 (``test_split``)
    after Keras' shuffle, as keras.datasets.reuters with its arguments; made fixed-width by
    ``sequence_length`` or ``multi_hot``."""

    PARAMS = {**PARAMS, "test_split": Param("float", 0.2, min=0.0, max=1.0)}
    FILES = (RemoteFile("reuters.npz", "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916", 2110848),)

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        a = load_npz_sequences(path, ["x", "y"])
        seqs = Ragged.of(a["x"], f"{path}: x")
        part = shuffled(seqs, labels_of(a["y"], len(seqs.lengths), f"{path}: y"),
                        np.random.RandomState(params["seed"]))
        ((seqs, labels),) = keras_sequences([part], params, path)
        cut = int(len(labels) * (1 - params["test_split"]))
        train, test = (seqs.take(np.arange(cut)), labels[:cut]), (seqs.take(np.arange(cut, len(labels))),
                                                                   labels[cut:])
        x_train, x_test = as_arrays([train, test], params, path)
        return {"train": check_features(x_train, train[1], path),
                "test": check_features(x_test, test[1], f"{path} (test)")}
