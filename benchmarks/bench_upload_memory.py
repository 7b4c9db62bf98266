"""The web server's memory while it takes (or refuses) big uploads: `playbook serve` in a process of its own, a
playbook with a file input; peak RSS (VmHWM) of the server after it started and after each upload. The uploads are
streamed from disk by the client, so only the server's memory moves.

    python benchmarks/bench_upload_memory.py [--accepted-mb 90] [--refused-mb 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.fake_server_process import free_port

PLAYBOOK = """
name: keep
inputs: {comments: {type: file}}
steps:
  - {id: note, tool: file.write, with: {path: ok.txt, content: "kept"}}
"""
TOKEN = "bench-token"


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def big_file(folder: Path, megabytes: int) -> Path:
    path = folder / f"comments-{megabytes}mb.csv"
    line = "1,物流很快，包装完好，下次还来\n".encode()
    with path.open("wb") as handle:
        handle.write(b"id,text\n")
        for _ in range(megabytes * 1_000_000 // len(line)):
            handle.write(line)
    return path


def chunks(path: Path) -> Iterator[bytes]:
    """A multipart body with no Content-Length (chunked): the server counts it as it arrives."""
    yield (b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n')
    yield (b'--b\r\nContent-Disposition: form-data; name="upload_comments"; filename="c.csv"\r\n'
           b"Content-Type: text/csv\r\n\r\n")
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            yield block
    yield b"\r\n--b--\r\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accepted-mb", type=int, default=90)
    parser.add_argument("--refused-mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "project"
        (project / "playbooks").mkdir(parents=True)
        (project / "playbook.toml").write_text("[server]\nmax_upload_mb = 100\n", encoding="utf-8")
        (project / "playbooks" / "keep.yaml").write_text(PLAYBOOK, encoding="utf-8")
        port = free_port()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PLAYBOOK_SERVER_TOKEN": TOKEN}
        server = subprocess.Popen([sys.executable, "-m", "runner", "serve", "--port", str(port)], cwd=project,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=600, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                while True:
                    try:
                        http.get("/start/keep")
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                csrf = http.cookies["playbook_csrf"]
                rows = [("started, one page served", "", peak_mb(server.pid))]
                refused = big_file(Path(folder), args.refused_mb)
                with refused.open("rb") as handle:
                    answer = http.post("/start/keep", data={"csrf": csrf},
                                       files={"upload_comments": ("c.csv", handle, "text/csv")})
                rows.append((f"{args.refused_mb} MB upload, with Content-Length", str(answer.status_code),
                             peak_mb(server.pid)))
                body = (b.replace(b"{csrf}", csrf.encode()) for b in chunks(refused))
                answer = http.post("/start/keep", content=body,
                                   headers={"Content-Type": "multipart/form-data; boundary=b"})
                rows.append((f"{args.refused_mb} MB upload, chunked (no length)", str(answer.status_code),
                             peak_mb(server.pid)))
                accepted = big_file(Path(folder), args.accepted_mb)
                with accepted.open("rb") as handle:  # last: the run it starts loads the engine into the server
                    answer = http.post("/start/keep", data={"csrf": csrf},
                                       files={"upload_comments": ("c.csv", handle, "text/csv")})
                rows.append((f"{args.accepted_mb} MB upload, with Content-Length (saved, run started)",
                             str(answer.status_code), peak_mb(server.pid)))
        finally:
            server.terminate()
            server.wait()
    print("| after | answer | server peak RSS MB |")
    print("|---|---|---|")
    for what, status, peak in rows:
        print(f"| {what} | {status} | {peak:.0f} |")


if __name__ == "__main__":
    main()
