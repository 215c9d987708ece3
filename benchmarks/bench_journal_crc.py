"""What the journal's per-record CRC-32 chain costs: writing a record (serialise + checksum against
serialise alone) and reading the file back (quantsearch's checked reader against Optuna's
plain one), on the records of a real journal, interleaved in one process.

Usage: python benchmarks/bench_journal_crc.py RUN_DIR/study.journal [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from optuna.storages.journal import JournalFileBackend

from quantsearch.search import journal, journal_record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    logs = list(JournalFileBackend(str(args.path)).read_logs(0))
    for log in logs:
        log.pop(journal_record.CHAIN_KEY, None)
        log.pop(journal_record.LEGACY_CRC_KEY, None)
    size = args.path.stat().st_size
    plain_w, crc_w, plain_r, checked_r = [], [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for log in logs:
            (json.dumps(log, separators=(",", ":")) + "\n").encode()  # the code before
        plain_w.append(time.perf_counter() - t)
        t = time.perf_counter()
        journal_record.lines([journal_record.encode(log) for log in logs], 0)
        crc_w.append(time.perf_counter() - t)
        t = time.perf_counter()
        list(JournalFileBackend(str(args.path)).read_logs(0))
        plain_r.append(time.perf_counter() - t)
        t = time.perf_counter()
        list(journal.JournalBackend(args.path, exclusive=False).read_logs(0))
        checked_r.append(time.perf_counter() - t)
    n = len(logs)
    med = statistics.median
    print(f"{n} records, {size / n:.0f} bytes each on average, median of {args.repeats}")
    print(f"write: plain {med(plain_w) / n * 1e6:.1f} us/record, with CRC "
          f"{med(crc_w) / n * 1e6:.1f} us/record ({med(crc_w) / med(plain_w):.2f}x)")  # fmt: skip
    print(f"read:  Optuna {med(plain_r) * 1e3:.1f} ms, checked {med(checked_r) * 1e3:.1f} ms "
          f"({med(checked_r) / med(plain_r):.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
