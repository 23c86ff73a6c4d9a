"""``recsys-serve --model PATH --port N [--host 127.0.0.1]``: run the recommendation service with uvicorn,
and :class:`ServiceProcess`, which starts it as a background process and always stops it.

The service is :func:`recsys_utils.pipeline.service.create_app` on a file written by
:meth:`recsys_utils.pipeline.serving.ServingPipeline.save` (read only through its safe loader).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys-serve",
                                     description="Serve a saved pipeline (ServingPipeline.save) over HTTP.")
    parser.add_argument("--model", required=True, help="a saved pipeline (.npz from ServingPipeline.save)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--max-k", type=int, default=100, help="largest k a request may ask for")
    parser.add_argument("--max-per-category", type=int, default=3, help="business rule: items per category")
    parser.add_argument("--sponsored", type=int, nargs="*", default=(), help="campaign item ids for the ad slot")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the options, load the model (a refused file exits with status 2 and one line), serve."""
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"recsys-serve: --port must be between 1 and 65535, got {args.port}", file=sys.stderr)
        return 2
    if args.max_k < 1:
        print(f"recsys-serve: --max-k must be >= 1, got {args.max_k}", file=sys.stderr)
        return 2
    import uvicorn

    from recsys_utils.pipeline.service import ServiceConfig, create_app

    config = ServiceConfig(model_path=Path(args.model), max_k=args.max_k, max_per_category=args.max_per_category,
                           sponsored=tuple(args.sponsored))
    try:
        app = create_app(config)
    except ValueError as error:  # PipelineFormatError included: one line, no traceback
        print(f"recsys-serve: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the process that started it dies (no orphaned server)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServiceProcess:
    """``recsys-serve`` as a child process: :meth:`start` waits for ``/health``; :meth:`stop` (also at
    interpreter exit, and when used as a context manager) terminates it and waits, killing if needed."""

    def __init__(self, model: str | Path, port: int, host: str = "127.0.0.1", extra: tuple[str, ...] = (),
                 startup_timeout: float = 60.0) -> None:
        self.url = f"http://{host}:{port}"
        self.command = [sys.executable, "-m", "recsys_utils.cli.serve", "--model", str(model), "--port", str(port),
                        "--host", host, *extra]
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        self.log = tempfile.TemporaryFile()  # stderr to a file: a pipe nobody reads could fill and block the server
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=self.log,
                                        preexec_fn=preexec, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                error = self.log.read().decode(errors="replace").strip().splitlines()
                self.stop()
                raise RuntimeError(f"recsys-serve exited with {self.process.returncode}: "
                                   f"{error[-1] if error else 'no message'}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"recsys-serve did not answer /health within {self.startup_timeout} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate (then kill) the server and wait for it; returns its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.log.close()
        atexit.unregister(self.stop)
        return self.process.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
