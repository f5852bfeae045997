#!/usr/bin/env python3
"""Run ``airflow standalone`` for the example DAGs on an isolated AIRFLOW_HOME, and stop it cleanly.

    python scripts/airflow_standalone.py [--home DIR] [--port N] [--fresh]

SQLite, the local backend, the DAGs of ``dags/``. When the API server and every component answer
healthy, prints the URL, the user and the password that the simple auth manager generated
(it keeps them in ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``). Ctrl-C (or
SIGTERM) stops everything it started: the standalone process and all of its children, task
processes included (they run in their own process groups but stay in its session), and the
local backend's detached workflow runners that this home's store recorded. Linux only (/proc).

The browser test runs this same script (``--ready-file`` tells it when the server is up).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
COMPONENTS = ("scheduler", "dag_processor", "triggerer")


class Stop(Exception):
    """Raised by the signal handler: leave the wait loop and shut down."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--home", type=Path, default=REPO / ".airflow-ui", help="AIRFLOW_HOME")
    parser.add_argument("--port", type=int, default=0, help="API server port (0: 8080 or free)")
    parser.add_argument("--dags-folder", type=Path, default=REPO / "dags")
    parser.add_argument("--fresh", action="store_true", help="delete the home first")
    parser.add_argument(
        "--no-schedule",
        action="store_true",
        help="create no scheduled runs (only triggered ones run; the browser test uses this)",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--ready-file", type=Path, help="write the URL and password here (JSON)")
    parser.add_argument("--log", type=Path, help="standalone output (default: HOME/standalone.log)")
    args = parser.parse_args(argv)

    home = args.home.resolve()
    if args.fresh and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port(preferred=8080)
    url = f"http://localhost:{port}"
    env = airflow_env(home, port, url, args.dags_folder.resolve(), schedule=not args.no_schedule)
    log_path = (args.log or home / "standalone.log").resolve()

    for name in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(name, _raise_stop)
    print(f"Starting Airflow standalone in {home} (log: {log_path})", flush=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one session to find every descendant in at shutdown
        )
    try:
        wait_ready(process, url, home, args.ready_timeout, log_path)
        password = read_password(home)
        info = {"url": url, "username": "admin", "password": password, "home": str(home)}
        info |= {"pid": process.pid, "log": str(log_path)}
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(args.ready_file)
        print(
            f"\nAirflow is ready at {url}\n"
            f"  user:     admin\n"
            f"  password: {password}   (from {home / PASSWORDS_FILE})\n"
            f"  DAG:      {url}/dags/nightly_circuit_cutting\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while process.poll() is None:
            time.sleep(0.5)
        print(f"airflow standalone exited with status {process.returncode}", file=sys.stderr)
        return 1
    except Stop:
        print("\nStopping Airflow ...", flush=True)
        return 0
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for name in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(name, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        left = shutdown(process, home)
        print("Stopped." if not left else f"Could not stop processes {left}", flush=True)


def _raise_stop(signum, frame) -> None:
    raise Stop()


def airflow_env(home: Path, port: int, url: str, dags: Path, *, schedule: bool) -> dict[str, str]:
    plugins = home / "plugins"
    plugins.mkdir(exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__") or k == "AIRFLOW_HOME"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__DEFAULT_WRAP": "True",  # long log lines wrap in the log view
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(schedule),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


def free_port(preferred: int) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def wait_ready(process: subprocess.Popen, url: str, home: Path, timeout: float, log: Path) -> None:
    """Until the API server answers and reports every component healthy, within ``timeout``."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimeoutError(f"airflow standalone exited early; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
                health = json.load(response)
            states = {c: (health.get(c) or {}).get("status") for c in COMPONENTS}
            if all(s == "healthy" for s in states.values()) and (home / PASSWORDS_FILE).exists():
                return
            last = json.dumps(states)
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1.0)
    raise TimeoutError(f"Airflow not ready after {timeout:.0f} s ({last}); see {log}")


def read_password(home: Path, user: str = "admin") -> str:
    return json.loads((home / PASSWORDS_FILE).read_text())[user]


def shutdown(process: subprocess.Popen, home: Path, grace: float = 20.0) -> list[int]:
    """Stop the standalone session and this home's workflow runners; return what survived."""
    sessions = {process.pid, *runner_sessions(home)}
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # standalone stops its components itself
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        members = session_members(sessions)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while members and time.monotonic() < deadline:
            time.sleep(0.2)
            members = session_members(sessions)
        if not members:
            break
    if process.poll() is None:
        process.kill()
    process.wait()
    return session_members(sessions)


def runner_sessions(home: Path) -> set[int]:
    """Detached local-backend runners (each leads its own session) recorded under this home."""
    found = set()
    for pid_file in (home / "hybrid-quantum" / "_runs").glob("*/runner.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if b"hybrid_provider" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
    return found


def session_members(sessions: set[int]) -> list[int]:
    """Live (non-zombie) processes whose session id is one of ``sessions``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, session = fields[0], int(fields[3])
        if session in sessions and state != "Z" and int(entry.name) != os.getpid():
            members.append(int(entry.name))
    return members


if __name__ == "__main__":
    sys.exit(main())
