"""A gate's MQTT side as a process of its own, for kill tests:

    python -m tests.support.spool_gate DB PORT COUNT [PAUSE_S]

appends COUNT scans to the outbox at DB while a publisher drains it to the broker on
127.0.0.1:PORT, printing each seq once its row is committed; then waits (bounded) until
the outbox is empty, stops cleanly and prints `drained`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.support.gate import new_outbox, publisher_for, scans, wait_until


def main(db: str, port: str, count: str, pause_s: str = "0.002") -> None:
    outbox = new_outbox(Path(db))
    publisher = publisher_for(int(port), outbox)
    publisher.start()
    for _ in range(int(count)):
        (seq,) = scans(outbox, 1)
        print(seq, flush=True)
        publisher.wake()
        time.sleep(float(pause_s))
    drained = wait_until(lambda: outbox.depth().rows == 0, timeout=20)
    publisher.stop()
    print("drained" if drained else "not drained", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
