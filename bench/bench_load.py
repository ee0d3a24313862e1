"""The insights API under concurrent load while its toggles swap and its datasets refresh.

Seeds the demo dataset into an SQLite file, starts the app with uvicorn in its own process on
127.0.0.1, publishes a rollout stage the kubelet's way, and then, all at once for `--seconds`:
- drives concurrent clients at a temporal revenue question (`POST /api/rag-qdrant/query`) and
  at `GET /api/feature-status`, with wrk when it is installed, otherwise with an asyncio +
  httpx load generator in a separate process (the report says which);
- swaps the features directory `--swaps` times from another process with the kubelet's
  sequence (alternating two stages that both keep temporal_analysis on);
- refreshes every dataset (customer data, health scores, the knowledge base) once.
It reports requests per second, latency p50 and p99, and failed requests (non-2xx answers and
transport errors; the goal is 0), and exits 1 when any request failed.

    python bench/bench_load.py [--seconds 20] [--connections 16] [--swaps 1000]
        [--accounts 200] [--generator auto|wrk|python] [--no-refresh] [--json]

Only loopback servers this script starts are loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flagstage.projection import publish
from flagstage.rendering import render_config
from flagstage.validation import parse_rollout

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"
ADMIN_TOKEN = "bench-admin-token"
TENANT = "acme"
QUESTION = {
    "query": "Which accounts have the highest revenue across last 4 months?",
    "query_type": "temporal_analysis",
}
DATASETS = ("customer_data", "health_scores", "rag_knowledge_base")
SWAP_STAGES = (3, 4)  # week-4 and week-5: temporal_analysis on in both
READY_TIMEOUT_SECONDS = 60.0
REFRESH_TIMEOUT_SECONDS = 300.0


@dataclass
class Target:
    name: str
    method: str
    path: str
    body: bytes | None = None


TARGETS = (
    Target("temporal query", "POST", "/api/rag-qdrant/query", json.dumps(QUESTION).encode()),
    Target("feature-status", "GET", "/api/feature-status"),
)


@dataclass
class LoadResult:
    target: str
    generator: str
    requests: int
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    failed: int
    notes: list[str] = field(default_factory=list)


# -- the app process ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stage_data() -> list[dict[str, str]]:
    rollout = parse_rollout(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    return [render_config(rollout, index).data for index in SWAP_STAGES]


def start_app(workdir: Path, accounts: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    database = f"sqlite:///{workdir / 'insights.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "FEATURES_CONFIG_DIR": str(workdir / "features"),
        "QDRANT_PATH": str(workdir / "qdrant"),
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }
    env.pop("OPENAI_API_KEY", None)
    subprocess.run(
        [sys.executable, "-m", "flagstage_app.cli", "seed", "--accounts", str(accounts)],
        env=env,
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    publish(workdir / "features", stage_data()[0])
    port = free_port()
    log = (workdir / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "flagstage_app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the app exited; see {workdir / 'uvicorn.log'}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the app did not become ready") from None
            time.sleep(0.2)
    return process, url, workdir / "features"


def request_json(url: str, method: str = "GET", **headers: str) -> Any:
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# -- the side work: swaps and refreshes --------------------------------------------------------


def swap_configs(directory: str, count: int, seconds: float, done: Any) -> None:
    """Publish `count` versions spread over `seconds` (runs in its own process)."""
    versions = stage_data()
    started = time.perf_counter()
    for i in range(count):
        publish(directory, versions[i % len(versions)])
        ahead = started + seconds * (i + 1) / count - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    done.put((count, time.perf_counter() - started))


def refresh_everything(url: str, results: list[dict[str, Any]]) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for dataset in DATASETS:
        started = time.perf_counter()
        job = request_json(f"{url}/api/refresh-data/{dataset}", "POST", **admin)["job"]
        deadline = time.monotonic() + REFRESH_TIMEOUT_SECONDS
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = request_json(f"{url}/api/refresh-data/jobs/{job['id']}", **admin)
        results.append(
            {
                "dataset": dataset,
                "status": job["status"],
                "seconds": round(time.perf_counter() - started, 2),
                "summary": job["summary"] or job["error"],
            }
        )


# -- load with wrk -----------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["X-Customer-ID"] = "{tenant}"
wrk.headers["Content-Type"] = "application/json"
{body}
"""


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def start_wrk(
    target: Target, url: str, seconds: float, connections: int, workdir: Path
) -> subprocess.Popen[str]:
    body = f"wrk.body = {json.dumps(target.body.decode())}" if target.body else ""
    script = workdir / f"{target.path.strip('/').replace('/', '-')}.lua"
    script.write_text(WRK_SCRIPT.format(method=target.method, tenant=TENANT, body=body))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"{url}{target.path}",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_wrk(target: Target, output: str) -> LoadResult:
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    failed = 0
    notes = []
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        failed += int(non_2xx.group(1))
        notes.append(f"{non_2xx.group(1)} non-2xx answers")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        failed += sum(int(n) for n in errors.groups())
        notes.append(errors.group(0))
    return LoadResult(target.name, "wrk", requests, rate, p50, p99, failed, notes)


# -- load with Python, when wrk is missing -----------------------------------------------------


def python_load(target: Target, url: str, seconds: float, connections: int, out: Any) -> None:
    """Run in its own process: `connections` asyncio clients for `seconds`."""
    import httpx

    async def client_loop(client: httpx.AsyncClient, stop_at: float, latencies: list[float]) -> int:
        failures = 0
        headers = {"X-Customer-ID": TENANT, "Content-Type": "application/json"}
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                response = await client.request(
                    target.method, target.path, content=target.body, headers=headers
                )
                if response.status_code >= 300:
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)
        return failures

    async def main() -> None:
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
            started = time.perf_counter()
            stop_at = started + seconds
            failures = await asyncio.gather(
                *(client_loop(client, stop_at, latencies) for _ in range(connections))
            )
            elapsed = time.perf_counter() - started
        cuts = statistics.quantiles(latencies, n=100)
        out.put(
            LoadResult(
                target.name,
                "python (asyncio + httpx)",
                len(latencies),
                len(latencies) / elapsed,
                cuts[49],
                cuts[98],
                sum(failures),
            )
        )

    asyncio.run(main())


# -- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if args.generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --generator python")
    workdir = Path(tempfile.mkdtemp(prefix="flagstage-load-"))
    process, url, features = start_app(workdir, args.accounts)
    context = multiprocessing.get_context("spawn")
    try:
        swaps_done = context.Queue()
        swapper = context.Process(
            target=swap_configs, args=(str(features), args.swaps, args.seconds * 0.9, swaps_done)
        )
        refreshes: list[dict[str, Any]] = []
        refresher = threading.Thread(
            target=refresh_everything if args.refresh else lambda *_: None, args=(url, refreshes)
        )
        per_target = max(1, args.connections // len(TARGETS))

        results: list[LoadResult] = []
        swapper.start()
        refresher.start()
        if use_wrk:
            runs = [(t, start_wrk(t, url, args.seconds, per_target, workdir)) for t in TARGETS]
            for target, wrk in runs:
                output, _ = wrk.communicate(timeout=args.seconds + 60)
                results.append(read_wrk(target, output))
        else:
            out = context.Queue()
            loaders = [
                context.Process(target=python_load, args=(t, url, args.seconds, per_target, out))
                for t in TARGETS
            ]
            for loader in loaders:
                loader.start()
            results = [out.get(timeout=args.seconds + 120) for _ in loaders]
            for loader in loaders:
                loader.join()
        swapper.join(args.seconds + 60)
        refresher.join(REFRESH_TIMEOUT_SECONDS * len(DATASETS))
        swaps, swap_seconds = swaps_done.get(timeout=10)
        status = request_json(f"{url}/api/hot-reload-status")
    finally:
        process.terminate()
        process.wait(30)
    return {
        "generator": results[0].generator if results else None,
        "seconds": args.seconds,
        "connections": args.connections,
        "accounts_per_tenant": args.accounts,
        "cpus": os.cpu_count(),
        "load": [asdict(result) for result in results],
        "swaps": {"published": swaps, "seconds": round(swap_seconds, 2)},
        "watcher": {
            "reloads": status["reload_count"],
            "refused": status["refused_count"],
            "last_error": status["last_error"],
        },
        "refreshes": refreshes,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"load generator: {report['generator']}; {report['seconds']}s, "
        f"{report['connections']} connections, {report['accounts_per_tenant']} accounts/tenant, "
        f"{report['cpus']} CPUs"
    )
    print(f"{'target':16} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for item in report["load"]:
        print(
            f"{item['target']:16} {item['requests']:>9} {item['requests_per_second']:>8.1f} "
            f"{item['latency_p50_ms']:>8.2f} {item['latency_p99_ms']:>8.2f} {item['failed']:>7}"
        )
        for note in item["notes"]:
            print(f"  {note}")
    swaps = report["swaps"]
    watcher = report["watcher"]
    print(
        f"config swaps: {swaps['published']} in {swaps['seconds']}s; the app loaded "
        f"{watcher['reloads']}, refused {watcher['refused']}, last error {watcher['last_error']}"
    )
    for job in report["refreshes"]:
        print(f"refresh {job['dataset']}: {job['status']} in {job['seconds']}s ({job['summary']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--swaps", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=200, help="accounts per demo tenant")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--refresh",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refresh every dataset during the load (--no-refresh: a baseline without)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    failed = sum(item["failed"] for item in report["load"])
    refresh_failed = [job for job in report["refreshes"] if job["status"] != "succeeded"]
    sys.exit(1 if failed or refresh_failed else 0)


if __name__ == "__main__":
    main()
