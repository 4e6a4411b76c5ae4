"""ibb benchmarks: one JSON line per figure on standard output.

    python benchmarks/run.py [--figures rest_e2e,rest_latency,partners,soak] [--certificates 2000]
                             [--rate 20] [--latency-certificates 600]
                             [--soak-certificates 100000] [--time-limit 900]

Every figure runs real ``ibb serve`` processes with SQLite stores on 127.0.0.1; the
benchmark only submits certificates to the exporting gateway's ``/api`` and reads the
stores. Loops are bounded by count and by ``--time-limit``; only processes started here
are stopped, by their PID.

* ``rest_e2e``: certificates/second from submit to stored on the importing side, and
  latency issue -> delivered (p50/p99, from the sender's lifecycle events), peak RSS
  (VmHWM) of both gateways. The whole batch is submitted at once, so its latency is
  mostly time spent queued in the outbox.
* ``rest_latency``: latency issue -> delivered (p50/p99) when certificates arrive at a
  steady ``--rate`` below the throughput, so that they do not queue.
* ``partners``: the same throughput through the outbox with 1, 2, 4 and 8 partners
  (one bilateral profile per partner, all hosted by one sending and one receiving gateway).
* ``soak``: ``--soak-certificates`` through the outbox; RSS of both gateways sampled as
  it runs, to show that memory stays flat (first and last tenth compared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from ibb.core.model import certificate_to_json
from ibb.core.samples import sample_certificate
from ibb.core.store import Store, certificates, events
from ibb.core.testing import GatewayProcess, free_port, wire_profile
from ibb.profiles import SHIPPED_DIR

BASE = "kr-cn-eodes"
for _variable in ("IBB_KR_KCS_TOKEN", "IBB_CN_GACC_TOKEN"):  # sender tokens of the shipped profile
    os.environ.setdefault(_variable, f"bench-{_variable.lower()}")


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def make_profiles(tmp: Path, partners: int, sender_port: int, receiver_port: int) -> tuple[Path, list[str]]:
    """``partners`` copies of the shipped profile, each its own bilateral exchange, in one folder."""
    folder = tmp / "profiles"
    ids = []
    for n in range(1, partners + 1):
        pid = BASE if partners == 1 else f"{BASE}-p{n}"
        endpoints = {
            "KR-KCS": f"http://127.0.0.1:{sender_port}/rest/{pid}/messages",
            "CN-GACC": f"http://127.0.0.1:{receiver_port}/rest/{pid}/messages",
        }
        written = wire_profile(Path(SHIPPED_DIR) / f"{BASE}.toml", tmp / f"p{n}", endpoints, {f'id = "{BASE}"': f'id = "{pid}"'})
        folder.mkdir(exist_ok=True)
        written.rename(folder / f"{pid}.toml")
        ids.append(pid)
    return folder, ids


async def submit(url: str, work: list[tuple[str, str]], concurrency: int, deadline: float, rate: float | None = None) -> int:
    """POST (profile, certificate id) pairs to the issuing API; returns how many were accepted.

    Without ``rate`` as fast as the API takes them (``concurrency`` in flight); with it, one
    submission every ``1/rate`` seconds, so that nothing queues when the rate is sustainable."""
    queue = list(reversed(work))
    accepted = 0
    started = time.monotonic()
    submitted = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted, submitted
        while queue and time.monotonic() < deadline:
            profile_id, cert_id = queue.pop()
            if rate:
                submitted += 1
                await asyncio.sleep(max(0.0, started + submitted / rate - time.monotonic()))
            body = certificate_to_json(sample_certificate(cert_id, items=3)).encode()
            r = await client.post(f"{url}/api/{profile_id}/certificates", params={"as": "KR-KCS"}, content=body)
            if r.status_code == 201:
                accepted += 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return accepted


def count_received(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(certificates).where(certificates.c.direction == "inbound")).scalar_one()


def latencies(store: Store) -> list[float]:
    """Seconds from 'issued' to 'delivered' of every outbound certificate, from the sender's event log."""
    issued = events.alias("i")
    delivered = events.alias("d")
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(issued.c.at, delivered.c.at)
            .join(delivered, sa.and_(delivered.c.certificate_pk == issued.c.certificate_pk, delivered.c.event == "delivered"))
            .where(issued.c.event == "issued")
        ).all()
    return sorted((d - i).total_seconds() for i, d in rows)


def run_exchange(args: argparse.Namespace, partners: int, total: int, sample_rss: bool = False, rate: float | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="ibb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ports = {"KR-KCS": free_port(), "CN-GACC": free_port()}
        profiles, ids = make_profiles(tmp, partners, ports["KR-KCS"], ports["CN-GACC"])
        stores = {node: str(tmp / f"{node}.sqlite") for node in ports}
        gws = {node: GatewayProcess(profiles, stores[node], ports[node], log=tmp / f"{node}.log", nodes=(node,)) for node in ports}
        try:
            for gw in gws.values():
                gw.start()
            receiver_store = Store(stores["CN-GACC"])
            work = [(ids[n % len(ids)], f"KR-2026-{n + 1:06d}") for n in range(total)]
            deadline = time.monotonic() + args.time_limit
            samples: list[tuple[int, float | None, float | None]] = []
            start = time.perf_counter()
            done = 0

            async def drive() -> int:
                nonlocal done
                submitting = asyncio.create_task(submit(gws["KR-KCS"].url, work, args.concurrency, deadline, rate))
                while time.monotonic() < deadline:
                    done = await asyncio.to_thread(count_received, receiver_store)
                    if sample_rss:
                        samples.append((done, rss_mb(gws["KR-KCS"].pid), rss_mb(gws["CN-GACC"].pid)))
                    if submitting.done() and done >= submitting.result():
                        break
                    await asyncio.sleep(2.0 if sample_rss else 0.2)
                return await submitting

            accepted = asyncio.run(drive())
            elapsed = time.perf_counter() - start
            lat = latencies(Store(stores["KR-KCS"]))
            peak = {node: rss_mb(gw.pid, "VmHWM") for node, gw in gws.items()}
        finally:
            for gw in gws.values():
                gw.stop()
    result = {
        "partners": partners,
        **({"paced_rate_per_s": rate} if rate else {}),
        "certificates": done,
        "submitted": accepted,
        "seconds": round(elapsed, 2),
        "certificates_per_s": round(done / elapsed, 1) if elapsed else None,
        "latency_p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
        "latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1) if lat else None,
        "exporter_peak_rss_mb": peak["KR-KCS"],
        "importer_peak_rss_mb": peak["CN-GACC"],
    }
    if sample_rss and samples:
        tenth = max(1, len(samples) // 10)
        first, last = samples[:tenth], samples[-tenth:]
        result["rss_mb_first_tenth"] = {"exporter": max(s[1] or 0 for s in first), "importer": max(s[2] or 0 for s in first)}
        result["rss_mb_last_tenth"] = {"exporter": max(s[1] or 0 for s in last), "importer": max(s[2] or 0 for s in last)}
        result["rss_samples"] = len(samples)
        if args.rss_series:
            Path(args.rss_series).write_text("".join(f"{n}\t{e}\t{i}\n" for n, e, i in samples))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", default="rest_e2e,rest_latency,partners",
                        help="comma-separated: rest_e2e, rest_latency, partners, soak")
    parser.add_argument("--certificates", type=int, default=2000)
    parser.add_argument("--soak-certificates", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=20.0, help="rest_latency: submissions per second (below the throughput)")
    parser.add_argument("--latency-certificates", type=int, default=600, help="rest_latency: how many")
    parser.add_argument("--rss-series", help="soak: write 'delivered<TAB>exporter MB<TAB>importer MB' per sample to this file")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds; each figure stops submitting after this")
    args = parser.parse_args()
    common = {"store": "sqlite", "cpus": os.cpu_count(), "python": sys.version.split()[0], "items_per_certificate": 3}
    for figure in args.figures.split(","):
        if figure == "rest_e2e":
            print(json.dumps({"figure": "rest_e2e", **run_exchange(args, 1, args.certificates), **common}), flush=True)
        elif figure == "rest_latency":
            paced = run_exchange(args, 1, args.latency_certificates, rate=args.rate)
            print(json.dumps({"figure": "rest_latency", **paced, **common}), flush=True)
        elif figure == "partners":
            for partners in (1, 2, 4, 8):
                print(json.dumps({"figure": "outbox_partners", **run_exchange(args, partners, args.certificates), **common}), flush=True)
        elif figure == "soak":
            print(json.dumps({"figure": "soak", **run_exchange(args, 1, args.soak_certificates, sample_rss=True), **common}), flush=True)
        else:
            parser.error(f"unknown figure {figure!r}")


if __name__ == "__main__":
    main()
