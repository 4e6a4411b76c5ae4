"""Python heap kept per received certificate: is anything retained as certificates go by?

    python benchmarks/heap.py [--certificates 3000]

Runs the importing side's engine in this process on an SQLite store in a temporary folder
(the real ``Engine.receive``: parse, rules, store once, receipt), warms it up with 500
certificates, then compares tracemalloc snapshots taken before and after ``--certificates``
more. Prints one JSON line: traced bytes kept per certificate (0 means nothing retained;
a few bytes are objects of the last certificate still alive) and the largest sources.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import tracemalloc
import uuid
from pathlib import Path

import anyio

from ibb.core.engine import Engine
from ibb.core.plugins import Plugins
from ibb.core.profile import load_profile
from ibb.core.samples import sample_certificate
from ibb.core.store import Store
from ibb.core.transport import Message
from ibb.profiles import SHIPPED_DIR

for _variable in ("IBB_KR_KCS_TOKEN", "IBB_CN_GACC_TOKEN"):  # sender tokens of the shipped profile
    os.environ.setdefault(_variable, f"bench-{_variable.lower()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=3000)
    args = parser.parse_args()
    plugins = Plugins(entrypoints=False)
    profile = load_profile(Path(SHIPPED_DIR) / "kr-cn-eodes.toml", plugins)
    with tempfile.TemporaryDirectory(prefix="ibb-heap-") as tmp:
        engine = Engine({profile.id: profile}, Store(Path(tmp) / "importer.sqlite"), plugins, local={"CN-GACC"})
        fmt = engine.formats[profile.id]

        async def receive(first: int, count: int) -> None:
            for n in range(first, first + count):
                body = fmt.render(sample_certificate(f"KR-2026-{n:06d}"))
                await engine.receive(Message(message_id=f"{uuid.uuid4()}@heap", profile_id=profile.id, sender="KR-KCS",
                                             receiver="CN-GACC", content_type=fmt.content_type, body=body))

        anyio.run(receive, 1, 500)
        tracemalloc.start(10)
        gc.collect()
        before = tracemalloc.take_snapshot()
        anyio.run(receive, 501, args.certificates)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        engine.store.close()
    stats = after.compare_to(before, "lineno")
    kept = sum(s.size_diff for s in stats)
    print(json.dumps({
        "figure": "heap_per_certificate",
        "certificates": args.certificates,
        "traced_bytes_kept": kept,
        "traced_bytes_per_certificate": round(kept / args.certificates, 1),
        "largest": [f"{s.traceback[0].filename.rsplit('/', 2)[-1]}:{s.traceback[0].lineno} {s.size_diff:+d} B" for s in stats[:3]],
    }))


if __name__ == "__main__":
    main()
