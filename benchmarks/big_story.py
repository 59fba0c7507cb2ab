"""Stories of 1 MB, the server's limit (issue 29, item 1): time and peak memory of `memn2n serve`
answering (or refusing) each shape, and of `memn2n predict` reading the same story from a file.

    python benchmarks/big_story.py                  # this checkout, the bundled model
    python benchmarks/big_story.py --repo /path/to/old

Shapes, each a JSON body just under web.MAX_BODY: the issue's `"a b.\\n" * N + "c?\\n" * N`
(a question per line after N sentences: refused past MAX_QUESTIONS questions), 1 MB of sentences
then MAX_QUESTIONS questions, 1 MB of sentences then one question, and one line of 1 MB with no
question. The server's peak memory is its resident set's high-water mark (VmHWM, reset through
/proc/PID/clear_refs before each request, so Linux only); predict's, the process's maximum
resident set (/usr/bin/time). Prints a Markdown table. Take it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from local_server import started  # noqa: E402  (a sibling script)

MAX_BODY, MAX_QUESTIONS = 1_000_000, 1_000  # web.MAX_BODY, web.MAX_QUESTIONS
SENTENCE, QUESTION = "Mary went to the kitchen.\n", "Where is Mary?\n"


def fill(head: str, tail: str, unit: str) -> str:
    """``head`` + ``unit`` repeated + ``tail``, its JSON body just under MAX_BODY bytes."""
    room = MAX_BODY - len(json.dumps({"story": head + tail})) - 100
    return head + unit * (room // len(json.dumps(unit)[1:-1].encode())) + tail


def shapes() -> dict[str, str]:
    n = (MAX_BODY - 100) // len('a b.\\nc?\\n')
    return {"`a b.` x N, then `c?` x N (the issue's)": "a b.\n" * n + "c?\n" * n,
            f"sentences, then {MAX_QUESTIONS:,} questions": fill("", QUESTION * MAX_QUESTIONS, SENTENCE),
            "sentences, then one question": fill("", QUESTION, SENTENCE),
            "one line, no question": fill("", "", "x")}


def peak_kib(pid: int) -> int:
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmHWM:")))


def ask(url: str, story: str) -> tuple[int, int, float]:
    """(status, response bytes, seconds) of POST /api/predict."""
    body = json.dumps({"story": story}).encode()
    request = urllib.request.Request(url + "api/predict", data=body, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            status, size = response.status, len(response.read())
    except urllib.error.HTTPError as e:
        status, size = e.code, len(e.read())
    return status, size, time.perf_counter() - start


def predict(repo: Path, story: str) -> tuple[int, float, int]:
    """(exit code, seconds, peak KiB) of `memn2n predict FILE -c bundled --json` as a whole process."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "story.txt"
        path.write_text(story)
        done = subprocess.run(["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "memn2n_cli", "predict", str(path),
                               "-c", "bundled", "--json"], cwd=folder, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds, kib = done.stderr.strip().splitlines()[-1].split()
        return done.returncode, float(seconds), int(kib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    repo = args.repo.resolve()
    print("| story (JSON body just under 1 MB) | serve: status | response | seconds | server peak MiB "
          "| predict: exit | seconds | peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with started(repo) as url:
        pid = int(subprocess.run(["pgrep", "-f", "-n", "memn2n_cli serve --port 0"], capture_output=True,
                                 text=True).stdout.split()[0])
        for name, story in shapes().items():
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the high-water mark from here
            status, size, seconds = ask(url, story)
            code, predict_seconds, predict_kib = predict(repo, story)
            print(f"| {name} | {status} | {size:,} B | {seconds:.2f} | {peak_kib(pid) / 1024:.0f} "
                  f"| {code} | {predict_seconds:.2f} | {predict_kib / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
