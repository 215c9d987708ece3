"""One journal record: its line, its checksum chain, and what makes a line damaged.

A record is Optuna's ``JournalFileBackend`` line (compact JSON, one object a line) with one key
added last, :data:`CHAIN_KEY`: the CRC-32 of the line's JSON without that key, seeded with the
chain value of the line before it (0 at the first line, and after a line without one). The
checksum catches a changed byte; the chain catches a record removed, repeated or moved. Optuna
ignores unknown keys, so optuna-dashboard, ``optuna.load_study`` and older quantsearch versions
read the file unchanged.

Records written before the chain carry :data:`LEGACY_CRC_KEY` (the CRC-32 of the JSON alone),
checked as such; a record with neither key was written by Optuna's own backend (or by
optuna-dashboard) and is taken as it is, its meaning checked when it is replayed
(:mod:`quantsearch.search.journal_replay`).
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

from quantsearch.errors import StorageError

__all__ = [
    "CHAIN_KEY",
    "LEGACY_CRC_KEY",
    "check_record",
    "damaged",
    "encode",
    "finishes_trial",
    "is_study_record",
    "lines",
    "tail_seed",
]

CHAIN_KEY = "qs_chain"
LEGACY_CRC_KEY = "qs_crc32"  # quantsearch before the chain: the JSON's CRC-32 alone
# Optuna's journal records that finish a trial (JournalOperation.SET_TRIAL_STATE_VALUES, or
# CREATE_TRIAL of a trial already finished, as Study.add_trial and journal_storage.Journal write;
# the enum is private) in a finished state (TrialState COMPLETE, PRUNED, FAIL), and the
# study-level operations; tests/search/test_journal.py checks them against Optuna's enums.
FINISH_OP = 6
CREATE_TRIAL_OP = 4
STUDY_OPS = frozenset({0, 1, 2, 3})  # CREATE_STUDY, DELETE_STUDY, SET_STUDY_{USER,SYSTEM}_ATTR
FINISHED_STATES = frozenset({1, 2, 3})

_CHAIN_FIELD = f',"{CHAIN_KEY}":%d}}\n'.encode()
_TAIL = re.compile(rb'"' + CHAIN_KEY.encode() + rb'":(\d+)\}\r?\n\Z')
TAIL_BYTES = 40  # enough of a line's end to hold its chain value (tail_seed)


def encode(log: dict[str, Any]) -> bytes:
    """``log`` as compact JSON, the body its checksum covers."""
    return json.dumps(log, separators=(",", ":")).encode()


def lines(bodies: list[bytes], seed: int) -> bytes:
    """The journal lines of ``bodies`` (:func:`encode`), chained on from ``seed``.

    Example:
        >>> lines([b'{"op_code":0}'], 0)
        b'{"op_code":0,"qs_chain":232111015}\\n'
    """
    out = []
    for body in bodies:
        if body == b"{}":  # nothing to chain it into; never written by Optuna
            out.append(body + b"\n")
            seed = 0
            continue
        seed = zlib.crc32(body, seed)
        out.append(body[:-1] + _CHAIN_FIELD % seed)
    return b"".join(out)


def tail_seed(tail: bytes) -> int:
    """The chain value of the line whose last bytes are ``tail`` (0 for one without)."""
    m = _TAIL.search(tail)
    return int(m.group(1)) if m else 0


def damaged(path: Path, n: int, why: str) -> StorageError:
    """The one-line error for line ``n`` (0-based) of the journal ``path``."""
    return StorageError(
        f"storage: got {path}, whose line {n + 1} is damaged ({why}), allowed: the journal as "
        "quantsearch wrote it (it was not changed: restore it from a copy, or start a new study "
        "with --study NAME)"
    )


def check_record(raw: bytes, seed: int, path: Path, n: int) -> tuple[dict[str, Any], int]:
    """Line ``n`` of ``path`` (``raw``, its newline included) as the record written, its
    checksum removed, and the chain value the next line is seeded with.

    Serialising the record read back gives the bytes that were written (the same
    ``json.dumps`` settings; floats and escapes round-trip exactly).

    Raises:
        StorageError: the line is not a JSON object, or its checksum does not match.
    """
    try:
        log = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        why = "NUL bytes, as a crash leaves on some filesystems" if b"\0" in raw else exc
        raise damaged(path, n, f"not JSON: {why}") from None
    if not isinstance(log, dict):
        raise damaged(path, n, f"a JSON {type(log).__name__}, not a record")
    if CHAIN_KEY in log:
        value = log.pop(CHAIN_KEY)
        if type(value) is not int or value != zlib.crc32(encode(log), seed):
            raise damaged(
                path,
                n,
                "its checksum does not match: a byte changed, or a record was removed, "
                "repeated or moved, after it was written",
            )
        return log, value
    crc = log.pop(LEGACY_CRC_KEY, None)
    if crc is not None and crc != zlib.crc32(encode(log)):
        raise damaged(path, n, "its checksum does not match: a byte changed after it was written")
    return log, 0


def is_study_record(log: dict[str, Any]) -> bool:
    """Study creation and study attributes: rare, and what a reader needs first."""
    return log.get("op_code", -1) in STUDY_OPS


def finishes_trial(log: dict[str, Any]) -> bool:
    return log.get("op_code") in (FINISH_OP, CREATE_TRIAL_OP) and log.get("state") in (
        FINISHED_STATES
    )
