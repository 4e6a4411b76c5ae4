"""ibb benchmarks: one JSON line per figure on standard output.

    python benchmarks/run.py [--certificates 2000] [--concurrency 16] [--items 3] [--time-limit 300]

``rest_e2e``: two gateways, each a separate ``ibb serve`` process with its own SQLite
store, on 127.0.0.1. The exporting back-office submits certificates to ``/api``; each is
checked, recorded, rendered, POSTed to the importing gateway, parsed, checked, stored and
its receipt recorded before the submit call returns. Reports certificates/second, p50 and
p99 latency of that call, and each gateway's peak RSS (VmHWM from /proc). Bounded by
``--certificates`` and ``--time-limit``; only processes started here are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ibb.core.gateway import bind
from ibb.core.model import certificate_to_json
from ibb.core.samples import sample_certificate
from ibb.profiles import SHIPPED_DIR

PROFILE = "kr-cn-eodes"


def free_port() -> int:
    s = bind("127.0.0.1", 0)
    port = s.getsockname()[1]
    s.close()
    return port


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def start_gateway(profiles: Path, store: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("ibb") or str(Path(sys.executable).with_name("ibb"))
    return subprocess.Popen(
        [exe, "serve", "--profiles", str(profiles), "--store", str(store), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gateway at {url} did not become healthy")


async def submit_all(url: str, n: int, concurrency: int, items: int, time_limit: float) -> tuple[list[float], int, float]:
    bodies = [certificate_to_json(sample_certificate(f"KR-2026-{i:06d}", items=items)) for i in range(1, n + 1)]
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    deadline = time.monotonic() + time_limit

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            r = await client.post(f"{url}/api/{PROFILE}/certificates", params={"as": "KR-KCS"}, content=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201 or r.json().get("status") != "delivered":
                failures += 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, failures, elapsed


def rest_e2e(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="ibb-bench-") as tmp:
        tmpdir = Path(tmp)
        ports = {"KR-KCS": free_port(), "CN-GACC": free_port()}
        text = (Path(SHIPPED_DIR) / f"{PROFILE}.toml").read_text()
        text = text.replace("127.0.0.1:8701", f"127.0.0.1:{ports['KR-KCS']}").replace("127.0.0.1:8702", f"127.0.0.1:{ports['CN-GACC']}")
        (tmpdir / "profiles").mkdir()
        (tmpdir / "profiles" / f"{PROFILE}.toml").write_text(text)
        procs = {node: start_gateway(tmpdir / "profiles", tmpdir / f"{node}.sqlite", port) for node, port in ports.items()}
        try:
            for node, proc in procs.items():
                wait_healthy(f"http://127.0.0.1:{ports[node]}", proc)
            latencies, failures, elapsed = asyncio.run(
                submit_all(f"http://127.0.0.1:{ports['KR-KCS']}", args.certificates, args.concurrency, args.items, args.time_limit)
            )
            rss = {node: peak_rss_mb(p.pid) for node, p in procs.items()}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    latencies.sort()
    done = len(latencies)
    return {
        "figure": "rest_e2e",
        "certificates": done,
        "failures": failures,
        "items_per_certificate": args.items,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "certificates_per_s": round(done / elapsed, 1) if elapsed else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[min(done - 1, int(done * 0.99))] * 1000, 1) if latencies else None,
        "exporter_peak_rss_mb": rss["KR-KCS"],
        "importer_peak_rss_mb": rss["CN-GACC"],
        "store": "sqlite",
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=300.0, help="stop submitting after this many seconds")
    args = parser.parse_args()
    print(json.dumps(rest_e2e(args)), flush=True)


if __name__ == "__main__":
    main()
