"""A throw-away JupyterLab server for browser tests.

The server runs the venv's own JupyterLab (so the prebuilt labextensions of bqplot, anywidget
and jupyter-widgets under sys.prefix are found) on a free localhost port with a random token.
Everything it writes (config, runtime, settings, workspaces, IPython profile) goes to a
temporary folder, so a test run never reads or changes the user's Jupyter set-up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# Every process the server starts (kernels included) inherits this variable; teardown uses it
# to find survivors, since kernels run in their own sessions, outside the server's group.
MARKER_ENV = "SAE_WIDGETS_TEST_LAB"

# User settings that make the page deterministic: no news toast over the figures, and every
# cell attached to the DOM (windowing would detach off-screen cells and their outputs).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# The Jupyter config of `make demo` (its page config hook keeps Notebook 7's pages working on
# a server that also served JupyterLab pages): first on the config path, as the Makefile puts it.
DEMO_CONFIG_DIR = Path(__file__).resolve().parents[2] / "jupyter_config"


def free_port() -> int:
    """A localhost port that was free a moment ago (the server retries if it is taken).

    SAE_WIDGETS_LAB_PORTS="8960-8979" keeps to that range (engineers sharing one machine).
    """
    wanted = os.environ.get("SAE_WIDGETS_LAB_PORTS", "")
    low, _, high = wanted.partition("-")
    candidates = range(int(low), int(high or low) + 1) if low else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError(f"no free port in SAE_WIDGETS_LAB_PORTS={wanted!r}")


@dataclass
class LabServer:
    """A running JupyterLab: its URL, token, served folder and log file."""

    root_dir: Path
    log_path: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    _log_file: IO[bytes] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The browser URL of `path` (e.g. "lab/tree/x.ipynb"), logged in by the token."""
        return f"{self.base_url}/{path.lstrip('/')}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> object:
        """Call the REST API; returns the decoded JSON (None for an empty body)."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, n_chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n_chars:]

    def shutdown_kernels(self) -> None:
        """End every session and its kernel (open notebooks keep theirs until then)."""
        sessions = self.api("sessions")
        for session in sessions if isinstance(sessions, list) else []:
            self.api(f"sessions/{session['id']}", method="DELETE", timeout=30)

    def stop(self, grace_s: float = 20.0) -> None:
        """Shut down the server and its kernels; never returns with a process left behind."""
        if self.process.poll() is None:
            try:  # the polite way first: the server shuts its kernels down cleanly
                self.api("shutdown", method="POST")
            except (urllib.error.URLError, OSError):
                pass
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(self.process.pid, signal.SIGKILL)
                    self.process.wait(grace_s)
        _kill_marked_processes(self.token)
        self._log_file.close()


def start_lab_server(
    root_dir: Path, work_dir: Path, extra_env: dict[str, str] | None = None, timeout_s: float = 120
) -> LabServer:
    """Start JupyterLab serving `root_dir`; its private Jupyter dirs live under `work_dir`.

    Waits until /api/status answers with the token (bounded), and raises RuntimeError with the
    tail of the server log if the server exits or does not answer in `timeout_s`.
    """
    return _start_server(
        lambda port, token: [
            sys.executable,
            "-m",
            "jupyterlab",
            *_server_args(root_dir, work_dir, port, token),
        ],
        root_dir,
        root_dir,
        work_dir,
        {"JUPYTER_CONFIG_PATH": str(DEMO_CONFIG_DIR), **(extra_env or {})},
        timeout_s,
    )


def start_demo_server(
    command: Callable[[int], list[str]], cwd: Path, root_dir: Path, work_dir: Path
) -> LabServer:
    """Start the server of `command(port)` (e.g. `make demo`'s command line) in `cwd`, serving
    `root_dir`, with the private Jupyter dirs under `work_dir` and the token in JUPYTER_TOKEN
    (the user's Jupyter set-up is never read or changed; no JUPYTER_CONFIG_PATH is passed on,
    so the command must give its own)."""
    no_config_path = {"JUPYTER_CONFIG_PATH": ""}  # empty: unset for the shell and for Jupyter
    return _start_server(
        lambda port, _token: command(port), cwd, root_dir, work_dir, no_config_path, 120
    )


def _start_server(
    command: Callable[[int, str], list[str]],
    cwd: Path,
    root_dir: Path,
    work_dir: Path,
    extra_env: dict[str, str],
    timeout_s: float,
) -> LabServer:
    token = secrets.token_hex(24)
    env = _private_env(work_dir, token, extra_env)
    last_error = "never started"
    for attempt in range(3):  # a port can be taken between free_port() and the server's bind
        port = free_port()
        log_path = work_dir / f"jupyter-server-{attempt}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            command(port, token),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can signal all of it
        )
        server = LabServer(root_dir, log_path, port, token, process, log_file)
        if _wait_until_ready(server, timeout_s):
            return server
        last_error = server.log_tail()
        server.stop(grace_s=5)
    raise RuntimeError(f"JupyterLab did not start; server log tail:\n{last_error}")


def _server_args(root_dir: Path, work_dir: Path, port: int, token: str) -> list[str]:
    return [
        "--no-browser",
        "--allow-root",  # CI containers run as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # fail fast instead of silently serving elsewhere
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        f"--LabApp.workspaces_dir={work_dir / 'workspaces'}",
        f"--LabApp.user_settings_dir={work_dir / 'user-settings'}",
        "--LabApp.extension_manager=readonly",  # no PyPI queries: the machine may be offline
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def _private_env(work_dir: Path, token: str, extra_env: dict[str, str]) -> dict[str, str]:
    dirs = {
        "JUPYTER_CONFIG_DIR": work_dir / "config",
        "JUPYTER_RUNTIME_DIR": work_dir / "runtime",
        # The venv's share/jupyter (labextensions, python3 kernelspec) is still on the path.
        "JUPYTER_DATA_DIR": work_dir / "data",
        "IPYTHONDIR": work_dir / "ipython",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    settings_dir = work_dir / "user-settings"
    for relative, values in LAB_SETTINGS.items():
        target = settings_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update({name: str(path) for name, path in dirs.items()})
    env[MARKER_ENV] = token
    env["JUPYTER_TOKEN"] = token  # the token of a server started without --IdentityProvider.token
    env.update(extra_env)
    return env


def _wait_until_ready(server: LabServer, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            status = server.api("status", timeout=2)
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
            continue
        return isinstance(status, dict) and "started" in status
    return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _kill_marked_processes(token: str) -> None:
    """Kill processes (orphaned kernels) whose environment carries this server's marker."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"{MARKER_ENV}={token}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone already, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def copy_notebooks(sources: list[Path], root_dir: Path) -> None:
    """Copy notebooks side by side into the served folder (names must be unique)."""
    for source in sources:
        target = root_dir / source.name
        if target.exists():
            raise ValueError(f"two notebooks named {source.name!r}; names must be unique")
        shutil.copy2(source, target)
