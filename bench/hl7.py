"""HL7 messages accepted per second with their ACK, over one MLLP connection.

    .venv/bin/python -m bench.hl7 --messages 500
    .venv/bin/python -m bench.hl7 --db postgresql+psycopg://postgres@127.0.0.1:5432/test

The listener runs in this process on a temporary archive (SQLite unless ``--db``);
python-hl7's MLLPClient sends, alternately, an ORM^O01 new order (a new
accession each) and an ADT^A08 update of its patient, waiting for each ACK.
Prints messages/s and p50/p95 latency; never fails on time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hl7.client import MLLPClient

from hl7v2.listener import Listener
from hl7v2.receiver import Receiver
from pacs.archive import Archive
from pacs.settings import Settings


def _orm(n: int) -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|HIS|BVDK|PACS|BVDK|202612041000||ORM^O01|B{n}|P|2.5|||||VN|UNICODE UTF-8",
            f"PID|1||BN{n % 200}^^^BVDK^MR||Nguyễn^Thị Bích||19800102|F",
            f"ORC|NW|P{n}|F{n}||||^^^202612041030^^R",
            f"OBR|1|P{n}|F{n}|CT^CT sọ não||||||||||||||A{n}||||||CT",
        ]
    )


def _a08(n: int) -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|HIS|BVDK|PACS|BVDK|202612041000||ADT^A08|U{n}|P|2.5|||||VN|UNICODE UTF-8",
            f"PID|1||BN{n % 200}^^^BVDK^MR||Nguyễn^Thị Bích {n}||19800102|F",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        archive = Archive.open(Settings(data_dir=Path(folder), database_url=args.db))
        listener = Listener(Receiver(archive), "127.0.0.1", 0)
        port = listener.start()
        latencies = []
        try:
            with MLLPClient("127.0.0.1", port) as client:
                started = time.perf_counter()
                for n in range(args.messages):
                    message = _orm(n) if n % 2 == 0 else _a08(n)
                    sent = time.perf_counter()
                    reply = client.send_message(message)
                    latencies.append(time.perf_counter() - sent)
                    if b"MSA|AA|" not in reply:
                        raise SystemExit(f"message {n} not accepted: {reply!r}")
                elapsed = time.perf_counter() - started
        finally:
            listener.stop()
            archive.close()
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"{args.messages} messages in {elapsed:.2f} s: {args.messages / elapsed:.0f} messages/s "
        f"with ACK; p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
        f"({'PostgreSQL' if args.db else 'SQLite'})"
    )


if __name__ == "__main__":
    main()
