"""The documents of a token store: what lets a reopened store show each row's token in its
text, as the Dataset it was collected as did.

A store collected from a language model keeps, per row, ``token_doc``, ``token_pos`` and
``token_id`` (ordinary per-row fields) and, once for the whole store, its `Documents`:

    documents.texts.npy      uint8: every document's text, UTF-8, one after another
    documents.text_ends.npy  int64 (n_docs,): where each document's bytes end
    documents.lengths.npy    int64 (n_docs,): tokens in each document
    documents.token_ids.npy  int64 (sum of lengths,): the tokenization, documents in order
    documents.offsets.npy    int64 (sum of lengths, 2): each token's character span
    documents.unembedding.npy, documents.norm_weight.npy   a causal LM's, for logit effects
    tokenizer/...            the tokenizer (`save_pretrained`), for vocabulary display

Each file is listed in the manifest with its blake2b checksum, like the shards. The probe
attributes of templated sentences need the live model, so a reopened store has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sae_widgets.data.store_files import StoreError, check_file
from sae_widgets.data.store_writer import StoreWriter
from sae_widgets.data.tokens import Documents, TokenRows

__all__ = ["read_token_rows", "write_documents"]

_PREFIX = "documents."
_TOKENIZER = "tokenizer"


def write_documents(writer: StoreWriter, documents: Documents) -> None:
    """Add `documents` (texts, tokenization, unembedding, tokenizer) to a store being written."""
    encoded = [text.encode("utf-8") for text in documents.texts]
    writer.save_array(_PREFIX + "texts", np.frombuffer(b"".join(encoded), dtype=np.uint8))
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    writer.save_array(_PREFIX + "text_ends", ends)
    lengths = np.array([len(ids) for ids in documents.token_ids], dtype=np.int64)
    writer.save_array(_PREFIX + "lengths", lengths)
    ids = [np.asarray(a, np.int64) for a in documents.token_ids]
    writer.save_array(_PREFIX + "token_ids", np.concatenate(ids) if ids else np.zeros(0, np.int64))
    spans = [np.asarray(a, np.int64).reshape(-1, 2) for a in documents.offsets]
    writer.save_array(
        _PREFIX + "offsets", np.concatenate(spans) if spans else np.zeros((0, 2), np.int64)
    )
    if documents.unembedding is not None:
        writer.save_array(_PREFIX + "unembedding", np.asarray(documents.unembedding, np.float32))
    if documents.norm_weight is not None:
        writer.save_array(_PREFIX + "norm_weight", np.asarray(documents.norm_weight, np.float32))
    saved_tokenizer = False
    tokenizer = documents.tokenizer
    if tokenizer is not None and callable(getattr(tokenizer, "save_pretrained", None)):
        folder = writer.staging / _TOKENIZER
        tokenizer.save_pretrained(str(folder))
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = file.relative_to(writer.staging).as_posix()
            writer.add_file(relative, relative)
        saved_tokenizer = True
    writer.info["documents"] = {
        "n_documents": len(documents.texts),
        "tokenizer": saved_tokenizer,
        "variants_not_kept": sorted(documents.variants),
    }


def read_token_rows(
    folder: Path,
    manifest: dict[str, Any],
    fields: dict[str, np.ndarray],
    verified: set[str] | None,
) -> TokenRows | None:
    """The `TokenRows` of a token store (None for a store of other activations).
    `verified`: names whose checksums are already checked (None: do not check)."""
    info = manifest.get("documents")
    if not isinstance(info, dict) or not {"token_doc", "token_pos", "token_id"} <= set(fields):
        return None
    files = manifest.get("files", {})

    def load(role: str, mmap: bool = False) -> np.ndarray | None:
        entry = files.get(_PREFIX + role)
        if entry is None:
            return None
        path = folder / entry["file"] if verified is None else check_file(folder, entry, verified)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise StoreError(f"path: {entry['file']} cannot be read: {err}") from err

    parts = [load(name) for name in ("texts", "text_ends", "lengths", "token_ids", "offsets")]
    if any(part is None for part in parts):
        raise StoreError(f"path: the documents of token store {str(folder)!r} are incomplete")
    blob, text_ends, lengths, token_ids, offsets = (np.asarray(part) for part in parts)
    n_docs = int(info.get("n_documents", -1))
    if not (len(text_ends) == len(lengths) == n_docs) or lengths.sum() != len(token_ids):
        raise StoreError(f"path: the documents of token store {str(folder)!r} do not agree")
    data = blob.tobytes()
    starts = np.concatenate([[0], text_ends[:-1]])
    texts = [data[a:b].decode("utf-8") for a, b in zip(starts.tolist(), text_ends.tolist())]
    cuts = np.cumsum(lengths)[:-1]
    documents = Documents(
        texts=texts,
        token_ids=list(np.split(token_ids, cuts)),
        offsets=list(np.split(offsets.reshape(-1, 2), cuts)),
        tokenizer=_load_tokenizer(folder, files, verified) if info.get("tokenizer") else None,
        unembedding=load("unembedding", mmap=True),
        norm_weight=load("norm_weight"),
    )
    doc = fields["token_doc"]
    if doc.size and (doc.min() < 0 or doc.max() >= n_docs):
        raise StoreError(f"path: token_doc of {str(folder)!r} names documents it does not hold")
    return TokenRows(doc, fields["token_pos"], fields["token_id"], documents)


def _load_tokenizer(folder: Path, files: dict[str, Any], verified: set[str] | None) -> Any:
    """The saved tokenizer, or None when transformers (the text extra) is not installed."""
    if verified is not None:
        for role, entry in files.items():
            if role.startswith(_TOKENIZER + "/"):
                check_file(folder, entry, verified)
    try:
        from sae_widgets.data.models import _transformers

        transformers = _transformers()
    except ImportError:
        return None
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder / _TOKENIZER))
    except (OSError, ValueError) as err:
        raise StoreError(f"path: the tokenizer of {str(folder)!r} cannot be loaded: {err}") from err
