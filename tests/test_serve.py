"""`memn2n serve`: the JSON API through Starlette's TestClient, the command's refusals, the server's
sockets and deadlines in-process (web.listen and web.http_server, as `serve` calls them), hostile
clients against a real `memn2n serve`, and the page in a real headless Chromium against it
(skipped, saying why, without one)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from memn2n_cli.history import read_history
from memn2n_cli.model_card import read_card
from memn2n_cli.qa.inference import BUNDLED_RUN, QARun
from memn2n_cli.qa.web import (MAX_BODY, MAX_QUESTIONS, Runs, ThisMachineOnly, create_app, http_server, listen,
                                client_left, names_this_machine, read_body)
from tasks.qa import read_stories
from tests.conftest import ROOT, assert_one_line_error

README_STORY = ("Mary moved to the bathroom.\nJohn went to the hallway.\nWhere is Mary?\n"
                "Mary travelled to the kitchen.\nWhere is Mary?\n\nDaniel went back to the office.\nWhere is Daniel?\n")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working folder with no ./checkpoints and no data settings: `serve` falls back to the bundled model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEMN2N_DATA_DIR", raising=False)
    return tmp_path


def client(checkpoint: Path | None = None, data_dir: Path | None = None) -> TestClient:
    runs, _ = Runs.find(checkpoint, data_dir)
    return TestClient(create_app(runs), raise_server_exceptions=False)


def assert_bad_request(response, status: int, *fragments: str) -> str:
    """A 4xx whose JSON body is one line, {"error": ...}, naming what is wrong."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"], body
    for fragment in fragments:
        assert fragment in body["error"], (fragment, body["error"])
    return body["error"]


def lm_run(qa_run: Path, out: Path) -> Path:
    """A run of a language-modelling task as far as `serve` looks: a copy of ``qa_run`` whose
    config names ptb (the kind of a run is the kind of its task; manifest gone as if edited by hand)."""
    shutil.copytree(qa_run, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "task": "ptb"}))
    (out / "manifest.json").unlink()
    return out


def test_predict_returns_what_predict_json_prints(cli, here):
    (here / "story.txt").write_text(README_STORY)
    printed = cli("predict", "story.txt", "--json")
    assert printed.exit_code == 0, printed.stderr
    expected = [json.loads(line) for line in printed.stdout.splitlines()]
    response = client().post("/api/predict", json={"story": README_STORY})
    assert response.status_code == 200, response.text
    # The same records; only the name of the input differs ("story.txt" there, "<story>" here).
    assert response.json() == [{**r, "source": r["source"].replace("story.txt", "<story>")} for r in expected]
    assert [r["answer"] for r in response.json()] == ["bathroom", "kitchen", "office"]


def test_checkpoint_and_top_k_are_honoured(cli, here, trained_run):
    """Each named run answers with its own model: the task-1 run and the bundled joint model each
    give what `predict -c RUN --json` gives with that run, and they differ."""
    (here / "story.txt").write_text(README_STORY)
    api = client(trained_run[0])
    by_run = {}
    for name, run in ((str(trained_run[0]), trained_run[0]), ("bundled", BUNDLED_RUN)):
        printed = cli("predict", "story.txt", "-c", run, "--json", "--top-k", 5)
        expected = [{**json.loads(line), "source": json.loads(line)["source"].replace("story.txt", "<story>")}
                    for line in printed.stdout.splitlines()]
        by_run[name] = api.post("/api/predict", json={"story": README_STORY, "checkpoint": name, "top_k": 5}).json()
        assert by_run[name] == expected and [len(a["top_k"]) for a in expected] == [5, 5, 5]
    assert by_run["bundled"] != by_run[str(trained_run[0])]


def test_runs_lists_question_answering_runs_newest_first_then_the_bundled_model(here, trained_run):
    runs = here / "checkpoints"
    shutil.copytree(trained_run[0], runs / "task1")
    shutil.copytree(trained_run[0], runs / "group" / "qa1")
    shutil.copytree(trained_run[0], runs / "group" / "qa4")
    lm_run(trained_run[0], runs / "lm")  # written last: the newest, but a language model
    listed = client().get("/api/runs").json()
    assert [r["checkpoint"] for r in listed][-1] == "bundled" and listed[-1]["tasks"] == list(range(1, 21))
    assert sorted(r["checkpoint"] for r in listed[:-1]) == ["checkpoints/group/qa1", "checkpoints/group/qa4", "checkpoints/task1"]
    assert [r["default"] for r in listed] == [True, False, False, False]
    assert all(r["task"] == "babi" for r in listed)
    answers = client().post("/api/predict", json={"story": README_STORY, "checkpoint": "checkpoints/group/qa4"})
    assert answers.status_code == 200 and len(answers.json()) == 3
    assert_bad_request(client().post("/api/predict", json={"story": README_STORY, "checkpoint": "checkpoints/lm"}), 400,
                       "checkpoints/lm: is a 'ptb' run; this takes a question-answering run")


def test_with_only_language_model_runs_here_the_bundled_model_answers_and_says_why(here, trained_run):
    lm_run(trained_run[0], here / "checkpoints" / "lm")
    runs, note = Runs.find(None)
    assert runs.default == "bundled" and [r["checkpoint"] for r in runs.listing()] == ["bundled"]
    assert "(no question-answering run under ./checkpoints;" in note


def test_a_named_run_is_the_default(here, trained_run):
    listed = client(trained_run[0]).get("/api/runs").json()
    assert listed[0] == {"checkpoint": str(trained_run[0]), "path": str(trained_run[0]), "task": "babi", "tasks": [1],
                         "default": True}
    assert listed[1]["checkpoint"] == "bundled"


def test_about_gives_each_runs_model_card_and_learning_curves(here, trained_run):
    """The page's summary and curves of the chosen run: its card's front matter and its epochs; the
    bundled model's history is the one its metrics.json holds (it has no history.jsonl)."""
    api = client(trained_run[0])
    about = api.get("/api/about", params={"checkpoint": str(trained_run[0])}).json()
    assert about["card"] == read_card(trained_run[0]) and about["card"]["results"]["test_error"]["1"] == trained_run[1]["tasks"][0]["test_error"]
    assert about["history"] == read_history(trained_run[0]) and len(about["history"]) == 20  # 5 linear-start epochs, 15 more
    assert api.get("/api/about").json() == about  # the default run
    bundled = api.get("/api/about", params={"checkpoint": "bundled"}).json()
    assert bundled["card"]["paper"]["column"] == "PE LS RN joint"
    assert bundled["history"] == json.loads((BUNDLED_RUN / "metrics.json").read_text())["history"]
    assert_bad_request(api.get("/api/about", params={"checkpoint": "nowhere"}), 404, "unknown checkpoint 'nowhere'")


def test_random_story_from_the_data_folder(here, en_dir):
    drawn = client(data_dir=en_dir).get("/api/story", params={"task": 2}).json()
    assert drawn["task"] == 2 and re.search(r"qa2_.*test\.txt$", drawn["source"])
    assert drawn["story"] in (next(en_dir.glob("qa2_*test.txt"))).read_text()
    questions = read_stories(drawn["story"].encode(), "<story>")
    assert questions and all(len(q.supporting) == 2 for q in questions)  # task 2: two supporting facts
    answers = client().post("/api/predict", json={"story": drawn["story"]}).json()
    assert all(len(a["supporting"]) == 2 and "expected" in a for a in answers)


def test_random_story_without_data_comes_from_the_simulator(here):
    empty = here / "no-data"
    empty.mkdir()
    drawn = client(data_dir=empty).get("/api/story", params={"task": 17}).json()
    assert drawn["source"].startswith("memn2n's bAbI simulator")
    assert all(q.task == 0 and q.supporting for q in read_stories(drawn["story"].encode(), "<story>"))


@pytest.mark.parametrize("story, fragments", [
    ("Mary went home.\nJohn went out.\n", ["<story>:1:", "story with no question"]),
    ("", ["<story>: empty file"]),
    ("Where is Mary?\n", ["<story>:1:", "question with no sentence before it"]),
    (".\n?\n", ["<story>:2:", "question with no words"]),
    ('{"story": ["."], "question": "?"}\n', ["<story>:1:", "question with no words"]),
    ("1 Mary went home.\n3 Where is Mary?\n", ["<story>:2:", "does not follow"]),
])
def test_a_bad_story_is_the_one_line_predict_prints(cli, here, story, fragments):
    (here / "s.txt").write_text(story)
    message = assert_bad_request(client().post("/api/predict", json={"story": story}), 400, *fragments)
    printed = cli("predict", "s.txt", "-c", BUNDLED_RUN)
    assert_one_line_error(printed)
    assert printed.stderr.strip() == "error: " + message.replace("<story>", "s.txt")


@pytest.mark.parametrize("body, status, fragments", [
    (b"{not json", 400, ["not JSON", "line 1, column 2"]),
    (b"\xff\xfe\x00", 400, ["not JSON"]),
    (b'["Mary went home."]', 400, ["expected a JSON object"]),
    (b"[" * 100_000 + b"]" * 100_000, 400, ["not JSON: nested too deeply"]),
    (b'{"story": "Mary went home.\\nWhere is \\ud800?"}', 400, ["'story' is not text: surrogates not allowed at character 25"]),
    (b'{"checkpoint": "bundled"}', 400, ["'story' must be a string"]),
    (b'{"story": 3}', 400, ["'story' must be a string"]),
    (b'{"story": "x?", "stroy": "y"}', 400, ["unknown field 'stroy'"]),
    (b'{"story": "Mary went home.\\nWhere is Mary?", "top_k": 0}', 400, ["'top_k' must be a whole number from 1 to 100"]),
    (b'{"story": "Mary went home.\\nWhere is Mary?", "top_k": 1000000}', 400, ["'top_k' must be a whole number from 1"]),
    (b'{"story": "Mary went home.\\nWhere is Mary?", "checkpoint": 7}', 400, ["'checkpoint' must be the name"]),
    (b'{"story": "Mary went home.\\nWhere is Mary?", "checkpoint": "nope"}', 404, ["unknown checkpoint 'nope'"]),
])
def test_bad_requests_are_4xx_one_liners(here, body, status, fragments):
    assert_bad_request(client().post("/api/predict", content=body), status, *fragments)


def test_an_oversized_body_is_413_whether_or_not_it_declares_its_length(here):
    story = "Mary went home.\n" * (MAX_BODY // 16) + "Where is Mary?\n"
    assert_bad_request(client().post("/api/predict", json={"story": story}), 413, f"over {MAX_BODY:,} bytes")
    chunks = (b"x" * 65536 for _ in range(MAX_BODY // 65536 + 2))  # no Content-Length: sent chunked
    assert_bad_request(client().post("/api/predict", content=chunks), 413, f"over {MAX_BODY:,} bytes")


def test_a_story_of_the_largest_body_is_refused_in_seconds_for_its_questions(here):
    n = MAX_BODY // 10 - 10  # sentences and as many questions ("\\n" two bytes in JSON): just under MAX_BODY
    story = "a b.\n" * n + "c?\n" * n
    started = time.perf_counter()
    response = client().post("/api/predict", json={"story": story})
    assert_bad_request(response, 413, f"asks {n:,} questions", f"at most {MAX_QUESTIONS:,}")
    assert time.perf_counter() - started < 30


def test_other_bad_requests(here):
    assert_bad_request(client().get("/api/story", params={"task": "two"}), 400, "'task' must be a task number")
    assert_bad_request(client().get("/api/story", params={"task": 21}), 400, "unknown bAbI task 21")
    assert_bad_request(client().get("/api/story", params={"task": 1, "checkpoint": "nope"}), 404, "unknown checkpoint")
    assert_bad_request(client().get("/api/predict"), 405)
    assert_bad_request(client().get("/api/nothing"), 404)
    number = b'{"story": "Mary went home.\\nWhere is Mary?", "top_k": ' + b"9" * 5000 + b"}"
    assert_bad_request(client().post("/api/predict", content=number), 400, "not JSON: Exceeds the limit")
    no_story = here / "data"
    no_story.mkdir()
    (no_story / "qa1_odd_test.txt").write_text("hello\n")
    assert_bad_request(client(data_dir=no_story).get("/api/story", params={"task": 1}), 400,
                       "qa1_odd_test.txt: no story in this test file")


def test_a_damaged_model_is_left_out_not_fatal(here, trained_run, caplog):
    group = here / "checkpoints" / "group"
    for task in ("qa1", "qa2"):
        shutil.copytree(trained_run[0], group / task)
    (group / "metrics.json").write_text("{}")  # its summary: a finished run (one model per task: not the default)
    with (group / "qa2" / "vocab.json").open("a") as vocab:
        vocab.write(" ")
    listed = [r["checkpoint"] for r in client().get("/api/runs").json()]
    assert listed == ["bundled", "checkpoints/group/qa1"]
    assert "left out checkpoints/group/qa2: vocab.json" in caplog.text and caplog.text.count("left out") == 1


def test_a_damaged_run_is_one_warning_and_a_run_of_one_model_per_task_is_offered_model_by_model(here, trained_run, caplog):
    """With no run named: a run that cannot be read is said once at start-up (it was said twice,
    by the default's search and by the list), and the note that passes over a run of one model
    per task says how serve offers it (serve has no --task to pass)."""
    damaged, group = here / "checkpoints" / "damaged", here / "checkpoints" / "group"
    shutil.copytree(trained_run[0], damaged)
    with (damaged / "vocab.json").open("a") as vocab:
        vocab.write(" ")
    for task in ("qa1", "qa2"):
        shutil.copytree(trained_run[0], group / task)
    (group / "metrics.json").write_text("{}")  # its summary: a finished run of one model per task
    runs, note = Runs.find(None)
    assert caplog.text.count("left out") == 1 and "checkpoints/damaged: vocab.json" in caplog.text
    assert "(checkpoints/group: one model per task: each is offered by name, RUN/qaN)" in note and "--task" not in note
    listed = [r["checkpoint"] for r in TestClient(create_app(runs)).get("/api/runs").json()]
    assert listed == ["bundled", "checkpoints/group/qa1", "checkpoints/group/qa2"]  # the default first
    assert caplog.text.count("left out") == 1


def test_runs_of_the_runs_folders_and_those_finished_while_serving_are_offered(here, trained_run, caplog):
    """Issue 28, item 11: `serve --runs DIR` offers the runs under each DIR (not only ./checkpoints);
    a run written while the server runs is listed and answers, one removed is no longer listed, and
    one that cannot be read is left out with one warning, however often the list is asked for."""
    mine, theirs = here / "runs" / "mine", here / "elsewhere" / "theirs"
    shutil.copytree(trained_run[0], mine)
    theirs.parent.mkdir()
    runs, note = Runs.find(None, roots=[here / "runs", here / "elsewhere"])
    api = TestClient(create_app(runs), raise_server_exceptions=False)
    assert note == f"using {mine}" and [r["checkpoint"] for r in api.get("/api/runs").json()] == [str(mine), "bundled"]
    assert_bad_request(api.post("/api/predict", json={"story": README_STORY, "checkpoint": str(theirs)}), 404, "unknown checkpoint")

    shutil.copytree(trained_run[0], theirs)  # finished after the server started
    answers = api.post("/api/predict", json={"story": README_STORY, "checkpoint": str(theirs)})
    assert answers.status_code == 200 and [a["answer"] for a in answers.json()] == ["bathroom", "kitchen", "office"]
    listed = api.get("/api/runs").json()
    assert [(r["checkpoint"], r["default"]) for r in listed] == [(str(mine), True), (str(theirs), False), ("bundled", False)]

    shutil.rmtree(theirs)
    (here / "elsewhere" / "damaged").mkdir()
    (here / "elsewhere" / "damaged" / "config.json").write_text('{"task": "babi", "tasks": [1], "model": ')
    for _ in range(3):
        assert [r["checkpoint"] for r in api.get("/api/runs").json()] == [str(mine), "bundled"]
    assert caplog.text.count("left out") == 1 and f"{here / 'elsewhere' / 'damaged' / 'config.json'}" in caplog.text


def test_serve_refuses_a_runs_folder_that_is_not_there(cli, here):
    assert_one_line_error(cli("serve", "--runs", here / "none"), "folder of runs not found")


def test_mutated_requests_are_answered_or_refused_never_a_5xx(here):
    """Seeded fuzzing of POST /api/predict: mutated stories (the fuzz tests' three formats) inside
    valid JSON, and mutated JSON bodies: each an answer or a 4xx one-liner."""
    from tests.test_fuzz import STORIES, mutate

    rng, api, statuses = random.Random(0), client(), Counter()
    for case in range(300):
        if case % 2:
            body = json.dumps({"story": mutate(rng.choice(STORIES), rng).decode("utf-8", "replace")}).encode()
        else:
            body = mutate(json.dumps({"story": rng.choice(STORIES).decode(), "checkpoint": "bundled"}).encode(), rng)
        response = api.post("/api/predict", content=body)
        statuses[response.status_code] += 1
        if response.status_code != 200:
            assert_bad_request(response, response.status_code if response.status_code in (400, 404) else 400)
    assert statuses[200] > 50 and statuses[400] > 50, statuses


def test_on_loopback_only_requests_for_this_machine_are_answered(here):
    """A page elsewhere whose own name resolves to 127.0.0.1 (DNS rebinding) gets a 400."""
    runs, _ = Runs.find(None)
    api = TestClient(ThisMachineOnly(create_app(runs)), base_url="http://127.0.0.1:8000")
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
        assert api.get("/api/runs", headers={"host": host}).status_code == 200, host
    for host in ("evil.example:8000", "127.0.0.1.evil.example", "[::1", ""):
        assert_bad_request(api.get("/api/runs", headers={"host": host}), 400, "is not this machine")


@pytest.mark.parametrize("host, this_machine", [
    *((good, True) for good in ("localhost", "localhost:8000", "LocalHost:8000", "127.0.0.1:1", "127.0.0.1",
                                "127.0.0.2:8000", "[::1]:80", "[::1]", "[0:0:0:0:0:0:0:1]:80", "localhost:")),
    *((bad, False) for bad in ("evil.com:80@127.0.0.1", "127.0.0.1@evil.com", "user@localhost", "localhost:80:80",
                               "localhost:abc", "localhost:-1", "", " ", "localhost ", " localhost", "local host",
                               "[::1", "::1", "::1]:80", "[127.0.0.1]", "[::1]x", "[::1%25lo]", "127.1", "127.0.0.1.",
                               "evil.example", "localhost.evil.example", "0.0.0.0:8000", "[::]:80", "10.0.0.1",
                               "localhost/", "localhost?", "localhost#", "127.0.0.1\\@evil.com")),
])
def test_a_host_header_is_read_as_rfc_9110_writes_it(host, this_machine):
    """Issue 29, item 9: urlsplit read 'evil.com:80@127.0.0.1' as host 127.0.0.1 (the rest being
    userinfo, which a Host header cannot hold). A Host is uri-host [":" port]: a name, an IPv4
    address or a bracketed IPv6 one, then digits; this machine is localhost or a loopback address."""
    assert names_this_machine(host) is this_machine


def test_the_real_server_refuses_a_host_with_userinfo(server):
    url, _ = server
    host, port = re.match(r"http://(.+):(\d+)/", url).groups()
    for value in (b"evil.com:80@127.0.0.1", b"127.0.0.1"):
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(b"GET /api/runs HTTP/1.1\r\nHost: " + value + b"\r\nConnection: close\r\n\r\n")
            answer = b"".join(iter(lambda: connection.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 400 " if b"@" in value else b"HTTP/1.1 200 "), answer[:200]


def test_the_page_and_its_files_come_from_the_package(here):
    page = client().get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in ("/", "/static/app.js", "/static/style.css"):
        response = client().get(path)
        assert response.status_code == 200 and "http:" not in response.text and "https:" not in response.text  # no CDN


def test_serve_refuses_a_language_model_run(cli, here, trained_run):
    assert_one_line_error(cli("serve", "-c", lm_run(trained_run[0], here / "lm")), "is a 'ptb' run; this takes a question-answering run")
    assert_one_line_error(cli("serve", "-c", here / "none"), "run directory not found")
    assert_one_line_error(cli("serve", "--data-dir", here / "none"), "data directory not found")
    assert_one_line_error(cli("serve", "--host", ""), "--host must name an address")


def test_serve_says_when_the_port_is_taken(cli, here):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert_one_line_error(cli("serve", "-c", BUNDLED_RUN, "--port", taken.getsockname()[1]), "cannot listen on 127.0.0.1:")


def test_without_the_extra_serve_says_what_to_install(cli, monkeypatch):
    import memn2n_cli.qa

    monkeypatch.delitem(sys.modules, "memn2n_cli.qa.web")
    monkeypatch.delattr(memn2n_cli.qa, "web")
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    assert_one_line_error(cli("serve"), "pip install 'memn2n[serve]'")


def test_help_loads_neither_torch_nor_the_web_framework():
    code = ("import sys; sys.argv = ['memn2n', '--help']; from memn2n_cli.cli import app\n"
            "try: app()\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "serve" in out and out.splitlines()[-1] == "[]"


def small_app() -> Starlette:
    """GET /: "hello"; GET /slow?s=SECONDS: "slow", that many seconds later; POST /echo: the body,
    read as /api/predict reads it (web.read_body, a client that leaves answered by web.client_left)."""

    async def hello(request):
        return PlainTextResponse("hello")

    async def slow(request):
        await asyncio.sleep(float(request.query_params["s"]))
        return PlainTextResponse("slow")

    async def echo(request):
        return PlainTextResponse(await read_body(request))

    return Starlette(routes=[Route("/", hello), Route("/slow", slow), Route("/echo", echo, methods=["POST"])],
                     exception_handlers={ClientDisconnect: client_left})


@contextmanager
def running(app, **settings):
    """``app`` served in this process as `serve` serves its app (web.listen, web.http_server with
    ``settings``), on a free loopback port, from a thread: (the uvicorn.Server, its port)."""
    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = http_server(app, **settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(30)


def test_each_connection_sends_without_waiting_for_acks():
    """TCP_NODELAY on the server's end of every connection (issue 29, item 2). Without it, Nagle's
    algorithm held the body of each response after a keep-alive connection's first until the
    client's delayed ACK, some 40 ms. Read on the server's socket itself: no clock involved."""
    with running(small_app()) as (server, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):
            connection.request("GET", "/")
            assert connection.getresponse().read() == b"hello"
        [protocol] = server.server_state.connections
        accepted = protocol.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        connection.close()


def sent_before_closing(connection: socket.socket, within: float, trickle: bytes = b"") -> bytes | None:
    """What the server sends on ``connection`` before closing it, if it closes it within ``within``
    seconds (else None), while the client sends a byte of ``trickle`` every 0.1 s (a slowloris
    client never finishes its headers, or its body)."""
    deadline = time.monotonic() + within
    connection.settimeout(0.1)
    sent = b""
    while time.monotonic() < deadline:
        try:
            received = connection.recv(4096)
            if received == b"":
                return sent
            sent += received
        except TimeoutError:
            pass
        except ConnectionResetError:
            return sent
        if trickle:
            try:
                connection.send(trickle[:1])
            except (BrokenPipeError, ConnectionResetError):
                return sent
            trickle = trickle[1:] or trickle
    return None


def test_a_connection_whose_headers_do_not_arrive_in_time_is_closed():
    """Issue 29, item 9: connections that never finished their headers stayed open for ever (3,000
    after 40 s). With a deadline of 0.5 s each kind is closed within 5; a request whose headers
    came in time is answered however long the answer takes."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with running(small_app(), header_timeout=0.5) as (_, port):
        trickling = socket.create_connection(("127.0.0.1", port))
        trickling.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert sent_before_closing(trickling, 5, trickle=b"abcdefgh") == b""  # a byte each 0.1 s does not restart the clock
        silent = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(request[:10])
        assert sent_before_closing(silent, 5) == sent_before_closing(partial, 5) == b""
        # The second request of a keep-alive connection: its first bytes stop uvicorn's idle clock.
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        second.request("GET", "/")
        assert second.getresponse().read() == b"hello"
        second.sock.sendall(request[:10])
        assert sent_before_closing(second.sock, 5) == b""
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):
            slow.request("GET", "/slow?s=1")
            assert slow.getresponse().read() == b"slow"
        for connection in (silent, partial, trickling, second, slow):
            connection.close()


def test_a_request_whose_body_does_not_arrive_in_time_is_408_and_closed(capfd):
    """Issue 29: a client that sent its headers and then trickled its body, or sent no more, held
    its connection open for ever. With a body deadline of 0.5 s it is answered 408 with the API's
    one-line {"error": ...} and closed within 5 s; one whose request was answered without its body
    being read is closed too. A body that comes in time is answered, however long the answer takes,
    and its connection kept."""
    head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with running(small_app(), body_timeout=0.5) as (_, port):
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(head + b"x" * 10)
        trickling = socket.create_connection(("127.0.0.1", port))
        trickling.sendall(head)
        for connection, trickle in ((stalled, b""), (trickling, b"abcdefgh")):  # a byte each 0.1 s does not restart the clock
            sent = sent_before_closing(connection, 5, trickle)
            assert sent is not None, "not closed"
            status_line, _, body = sent.partition(b"\r\n\r\n")
            assert status_line.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), sent
            assert json.loads(body) == {"error": "the request body took over 0.5 seconds"}
        unread = socket.create_connection(("127.0.0.1", port))
        unread.sendall(head.replace(b"POST /echo", b"GET /"))
        sent = sent_before_closing(unread, 5, trickle=b"abcdefgh")
        assert sent is not None and sent.startswith(b"HTTP/1.1 200 ") and sent.endswith(b"hello"), sent
        prompt = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path, answer in (("/echo", b"x" * 100), ("/slow?s=1", b"slow"), ("/echo", b"x" * 100)):
            prompt.request("POST" if path == "/echo" else "GET", path, body=b"x" * 100)
            assert prompt.getresponse().read() == answer
        for connection in (stalled, trickling, unread, prompt):
            connection.close()
    assert capfd.readouterr().err == ""  # the app reading a body that will not come is told so: no traceback


def test_requests_past_the_connection_limit_are_503():
    with running(small_app(), max_connections=2) as (_, port):
        first, second = (http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(2))
        first.request("GET", "/")
        assert first.getresponse().status == 200
        second.request("GET", "/")  # two open, this one included
        assert second.getresponse().status == 503
        first.close()
        second.close()


def test_at_most_computing_predictions_are_computed_at_once_the_others_wait(here, monkeypatch):
    """48 clients at once over HTTP, more than the 40 threads of the pool: every one answered, never
    more than COMPUTING computing together, and GET /api/runs answered at once meanwhile (a waiting
    prediction holds no thread)."""
    from memn2n_cli.qa import web

    lock, now, most = threading.Lock(), [0], [0]
    answer = QARun.answer

    def counted(self, questions, top_k):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.25)  # a prediction's time: long enough for the others to arrive
        with lock:
            now[0] -= 1
        return answer(self, questions, top_k)

    monkeypatch.setattr(QARun, "answer", counted)
    runs, _ = Runs.find(None)
    answers = []

    def ask(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("POST", "/api/predict", json.dumps({"story": README_STORY}), {"Content-Type": "application/json"})
        answers.append([a["answer"] for a in json.loads(connection.getresponse().read())])
        connection.close()

    with running(create_app(runs)) as (_, port):
        clients = [threading.Thread(target=ask, args=(port,)) for _ in range(48)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)  # the predictions queued, a few done
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.monotonic()
        connection.request("GET", "/api/runs")
        assert connection.getresponse().status == 200
        listed, pending = time.monotonic() - started, sum(thread.is_alive() for thread in clients)
        connection.close()
        for thread in clients:
            thread.join(60)
    assert pending > 10 and listed < 0.25, (pending, listed)  # 48 x 0.25 s / COMPUTING: about 6 s in all
    assert answers == [["bathroom", "kitchen", "office"]] * 48
    assert most[0] == web.COMPUTING


@pytest.fixture(scope="module")
def server(tmp_path_factory, en_dir):
    """`memn2n serve --port 0` as a user starts it, in a folder with no runs: (url, the file its stderr goes to)."""
    folder = tmp_path_factory.mktemp("serve")
    log = folder / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "MEMN2N_DATA_DIR"}
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "memn2n_cli", "serve", "--port", "0", "--data-dir", str(en_dir)],
                                   cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while not (url := re.search(r"serving (http://\S+)", log.read_text())) and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert url, log.read_text()
        yield url.group(1), log
    finally:
        process.terminate()
        process.wait(10)


def test_the_real_server_answers_over_http(server):
    from urllib.request import Request, urlopen

    url, log = server
    assert "using the joint bAbI model that comes with memn2n" in log.read_text()
    request = Request(url + "api/predict", data=json.dumps({"story": README_STORY}).encode(),
                      headers={"Content-Type": "application/json"})
    with urlopen(request, timeout=30) as response:
        assert [a["answer"] for a in json.load(response)] == ["bathroom", "kitchen", "office"]


def test_a_client_that_leaves_mid_body_leaves_no_traceback(server):
    """Issue 29, item 9: a POST that declares 1,000 bytes, sends 100 and closes made the server log
    an ASGI traceback (Starlette's ClientDisconnect); there is nothing to say, and the server goes
    on answering."""
    from urllib.request import urlopen

    url, log = server
    before = len(log.read_text())
    with socket.create_connection(re.match(r"http://(.+):(\d+)/", url).groups()) as leaving:
        leaving.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\n\r\n" + b'{"story": "' + b"x" * 89)
        time.sleep(0.2)  # the app is waiting for the rest of the body
    time.sleep(0.5)  # and learns at once that it will not come
    with urlopen(url + "api/runs", timeout=30) as response:
        assert response.status == 200
    assert log.read_text()[before:] == ""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver (Debian's packages; .ci/run installs them)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.mark.slow
def test_the_page_in_a_browser(server, browser, trained_run, tmp_path):
    """Load the page, ask the README story, read the answers and Figure 2 from the DOM; draw a random
    test story (supporting facts marked); an empty story shows the one-line error; a run trained
    while the page is open is in the menu once the window has focus again."""
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, log = server
    # A condition may read an answer the page is replacing with the next one's: look again.
    wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run option"))
    assert Select(browser.find_element(By.ID, "run")).first_selected_option.get_attribute("value") == "bundled"

    def ask(story: str) -> None:
        browser.find_element(By.ID, "story").clear()
        browser.find_element(By.ID, "story").send_keys(story)
        browser.find_element(By.ID, "ask").click()

    ask("Mary went home.\n")  # no question
    error = wait.until(lambda d: d.find_element(By.ID, "error").is_displayed() and d.find_element(By.ID, "error"))
    assert error.text == "<story>:1: story with no question (a question is a line ending in '?')"

    Select(browser.find_element(By.ID, "task")).select_by_value("2")
    browser.find_element(By.ID, "random").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".answer"))
    assert "a test story of task 2" in browser.find_element(By.ID, "story-source").text
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, ".answer:first-child table.hops th")]
    assert headers == ["#", "Sentence", "Support", "Hop 1", "Hop 2", "Hop 3"]
    marks = browser.find_elements(By.CSS_SELECTOR, ".answer:first-child td.support")
    assert [m.text for m in marks].count("✓") == 2  # task 2: two supporting facts

    ask(README_STORY)
    wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, ".answer .question")] ==
               ["Where is Mary?", "Where is Mary?", "Where is Daniel?"])
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".answer .word")] == ["bathroom", "kitchen", "office"]
    first = browser.find_element(By.CSS_SELECTOR, ".answer:first-child")
    assert [th.text for th in first.find_elements(By.CSS_SELECTOR, "th")] == ["#", "Sentence", "Hop 1", "Hop 2", "Hop 3"]
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in first.find_elements(By.CSS_SELECTOR, "tbody tr")]
    expected = client(BUNDLED_RUN).post("/api/predict", json={"story": README_STORY}).json()[0]
    assert rows == [[str(i + 1), sentence, *(f"{hop[i]:.2f}" for hop in expected["attention"])]
                    for i, sentence in enumerate(expected["story"])]
    assert first.find_element(By.CSS_SELECTOR, ".probability").text == f"p = {expected['probability']:.4f}"
    # The chosen run's card and learning curves: train and valid error, linear start's end marked.
    summary = wait.until(lambda d: d.find_element(By.ID, "summary").text)
    assert summary.startswith("babi tasks 1–20 (joint) · 3 hops, d = 50 · test error 12.2% (the paper's PE LS RN joint: 12.4%)")
    curves = browser.find_elements(By.CSS_SELECTOR, "#curves polyline")
    assert [c.get_attribute("class") for c in curves] == ["curve train", "curve valid"]
    history = json.loads((BUNDLED_RUN / "metrics.json").read_text())["history"]
    assert [len(c.get_attribute("points").split()) for c in curves] == [len(history)] * 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curves line.linear-start")) == 1
    assert browser.save_screenshot(str(tmp_path / "serve.png"))

    shutil.copytree(trained_run[0], log.parent / "checkpoints" / "new")
    browser.execute_script("window.dispatchEvent(new Event('focus'))")
    wait.until(lambda d: [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#run option")] ==
               ["bundled", "checkpoints/new"])
    assert Select(browser.find_element(By.ID, "run")).first_selected_option.get_attribute("value") == "bundled"
