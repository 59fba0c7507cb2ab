"""`memn2n serve`: a local web page to ask question-answering runs, and the JSON API it uses.

    GET  /                    the page (memn2n_cli/serve_static/: HTML, CSS and plain JavaScript,
                              nothing fetched from the network)
    GET  /api/runs            the runs it answers with, the default first
    POST /api/predict         {"story": TEXT, "checkpoint": NAME, "top_k": N} (the last two optional):
                              the list `memn2n predict --json` prints, an object per question
    GET  /api/about?checkpoint=NAME
                              the run's model card (its front matter) and its history, an
                              object per epoch (memn2n_cli/history.py)
    GET  /api/story?task=N    a random test story of numbered task N (&checkpoint=NAME: of that
                              run's task), as {"story", "source", "task"}

Bad input is a 4xx whose body is {"error": LINE}, LINE being what the CLI prints after "error: "
(a story's line numbers count from its first line, named "<story>"). A request body holds at most
MAX_BODY bytes; a connection whose request headers take over HEADER_TIMEOUT seconds is closed, one
whose request body takes over BODY_TIMEOUT is answered 408 and closed, and past MAX_CONNECTIONS open
at once a request is answered 503 (`http_server`). At most COMPUTING predictions are computed at
once; the others wait their turn. Starlette and uvicorn are imported here only, and this module
only by the `serve` command: `memn2n --help` loads neither.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import os
import random
import re
import socket
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path

import anyio
import anyio.to_thread
import h11
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http.h11_impl import H11Protocol

from memn2n_cli.checkpoint import (BUNDLED_NAME, BUNDLED_RUN, CONFIG_FILE, RUNS_DIR, model_dirs, read_model_files,
                                   refuse_other_kinds, run_data_dir, run_task)
from memn2n_cli.configs import TOP_K
from memn2n_cli.devices import resolve_device
from memn2n_cli.errors import ArgumentError, UserError, not_a
from memn2n_cli.history import is_epoch_line, read_history
from memn2n_cli.model_card import read_card
from memn2n_cli.qa.inference import QARun, check_top_k, default_run, is_qa_run, runs_under
from tasks import get_task

log = logging.getLogger("memn2n")
STATIC = Path(__file__).parents[1] / "serve_static"  # package data of memn2n_cli
MAX_BODY = 1_000_000  # bytes: a story of some 30,000 bAbI sentences, far more than a memory holds
MAX_QUESTIONS = 1_000  # a request's: each answer carries its attention; a bAbI story asks at most a few dozen
FIELDS = {"story", "checkpoint", "top_k"}
HEADER_TIMEOUT = 10.0  # seconds for a request's headers: a browser sends them in one packet; a slow link needs a few
BODY_TIMEOUT = 30.0  # seconds for a request's body once its headers are in: MAX_BODY in 30 s is 33 kB/s, a slow mobile link
MAX_CONNECTIONS = 100  # open at once, else 503 (uvicorn's limit_concurrency): a browser opens 6, the load benchmark 32
COMPUTING = 2  # predictions computed at once, the others waiting their turn in the event loop (holding no thread,
# so the GET requests' threads stay free): more only fight over the GIL, each holding its story's attention, while
# torch spreads each one's tensor work over every core (or the GPU) anyway. BENCHMARKS "Two predictions at a time":
# at 8 and 32 clients 1.6-2.2x the requests/s and 0.49-0.64x the p99 of every request computing at once.


class Runs:
    """The question-answering models a server answers with, by name, the default first: the run
    named with -c (else the newest finished one), the runs under the folders of --runs (newest
    first), the bundled model. Each model directory of a run is one entry (a run of one model per
    task offers each task's model); each is loaded once, on first use. The folders are looked
    through again whenever the list is asked for (GET /api/runs) or a request names a run not in
    it, so that a run finished while the server runs is offered, and one removed is not."""

    def __init__(self, first: Path, roots: Sequence[Path] = (RUNS_DIR,), data_dir: Path | None = None,
                 device: str = "auto", chosen: bool = True):
        self.roots, self.data_dir, self.chosen = roots, data_dir, chosen  # chosen: -c named it
        self.device = resolve_device(device)
        self._checked: dict[Path, tuple[int, dict | None]] = {}  # a model directory: its config.json's time, its config
        self._loaded: dict[str, QARun] = {}
        self._lock = threading.Lock()  # for loading a model, and for looking through the folders
        self._rng = random.Random()
        self.pinned = {}  # the first run's models: offered whatever the folders hold
        for directory in model_dirs(first):
            if chosen:  # a model of the run asked for that cannot be read is an error
                self._checked[directory.resolve()] = (_written(directory), read_model_files(directory)[0])
            if self._check(directory) is not None:
                self.pinned[_name(directory)] = directory
        self.scan()
        self.default = next(iter(self.entries))

    @classmethod
    def find(cls, checkpoint: Path | None, data_dir: Path | None = None, roots: Sequence[Path] = (RUNS_DIR,),
             device: str = "auto") -> tuple[Runs, str | None]:
        """The runs a server offers, the default being ``checkpoint`` (refused unless it answers
        questions), else the newest run under ``roots``, else the bundled model, as for `predict`;
        and the line that says which, when none was named."""
        if data_dir is not None and not data_dir.is_dir():
            raise not_a(data_dir, "data directory")
        for root in roots:
            if not root.is_dir() and root != RUNS_DIR:  # ./checkpoints: none until the first run
                raise UserError("folder of runs not found", root)
        note = None
        if checkpoint is not None:
            refuse_other_kinds(run_task(checkpoint), checkpoint)
        else:
            checkpoint, note = default_run(roots, runs_under(roots, qa_only=True), "question-answering run",
                                           per_task="one model per task: each is offered by name, RUN/qaN")
        return cls(checkpoint, roots, data_dir, device, chosen=note is None), note

    def scan(self) -> None:
        """Look through the folders again: the entries are the first run's models, then those of the
        runs under the folders, newest first, then the bundled model."""
        with self._lock:
            entries = {name: (directory, self._checked[directory.resolve()][1]) for name, directory in self.pinned.items()}
            seen = {directory.resolve() for directory, _ in entries.values()}
            for run in [*runs_under(self.roots), BUNDLED_RUN]:
                try:
                    directories = model_dirs(run)
                except UserError:  # removed since it was listed; no bundled model in this checkout
                    continue
                for directory in directories:
                    if directory.resolve() not in seen and (config := self._check(directory)) is not None:
                        seen.add(directory.resolve())
                        entries[_name(directory)] = (directory, config)
            self.entries = entries

    def _check(self, directory: Path) -> dict | None:
        """The config of the question-answering model in ``directory``, checked as `load_model`
        checks it, short of reading its weights' values (a damaged or hostile folder costs no more
        than reading its small files), again only when its config.json has changed since (a loaded
        model then is loaded anew). None for a model of another kind, one removed, and one that
        cannot be read, which is left out with a warning."""
        try:
            written = _written(directory)
        except OSError:
            return None
        key = directory.resolve()
        if key not in self._checked or self._checked[key][0] != written:
            self._loaded.pop(_name(directory), None)
            try:
                config = read_model_files(directory)[0] if is_qa_run(directory) else None
            except UserError as e:
                log.warning("left out %s", e)
                config = None
            self._checked[key] = (written, config)
        return self._checked[key][1]

    def listing(self) -> list[dict]:
        """What GET /api/runs returns, the folders looked through again: each run's name (the API's
        "checkpoint"), folder, task and numbered tasks, and which one answers when none is named."""
        self.scan()
        return [{"checkpoint": name, "path": str(directory), "task": config["task"], "tasks": config["tasks"],
                 "default": name == self.default} for name, (directory, config) in self.entries.items()]

    def name(self, checkpoint: str | None) -> str:
        """The entry ``checkpoint`` names (None: the default); 404 for one this server does not
        offer, a UserError for a language-model run under the folders."""
        if checkpoint is None:
            return self.default
        if checkpoint not in self.entries:
            self.scan()
        if checkpoint not in self.entries:
            if Path(checkpoint) in runs_under(self.roots):  # a run here, but not one that answers questions
                refuse_other_kinds(run_task(Path(checkpoint)), Path(checkpoint))
            raise HTTPException(404, f"unknown checkpoint {checkpoint!r}; GET /api/runs lists the runs served")
        return checkpoint

    def model(self, checkpoint: str | None) -> QARun:
        """The model of ``checkpoint`` (None: the default), loaded on first use and kept."""
        name = self.name(checkpoint)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = QARun.load(self.entries[name][0], device=self.device)
            return self._loaded[name]

    def load_default(self) -> None:
        """Load the default model before serving: a UserError when it was named and cannot be
        loaded; else one that cannot (weights of NaN, say, which only loading shows) is left out
        with a warning, and the next is the default."""
        while True:
            try:
                self.model(None)
                return
            except UserError as e:
                if self.chosen or len(self.entries) == 1:
                    raise
                log.warning("left out %s", e)
                directory = self.entries[self.default][0]
                self._checked[directory.resolve()] = (_written(directory), None)
                self.pinned.pop(self.default, None)
                self.scan()
                self.default = next(iter(self.entries))

    def answer(self, story: str, checkpoint: str | None, top_k: int) -> list[dict]:
        """What `memn2n predict --json` prints for ``story``, as a list; 413 past MAX_QUESTIONS questions."""
        run = self.model(checkpoint)
        questions = run.read(story.encode(), "<story>")
        if len(questions) > MAX_QUESTIONS:
            raise HTTPException(413, f"the story asks {len(questions):,} questions; a request asks at most {MAX_QUESTIONS:,}")
        return [p.to_json() for p in run.answer(questions, top_k)]

    def about(self, checkpoint: str | None) -> dict:
        """What GET /api/about returns: the run's model card (its front matter; None for a run
        written before cards) and its learning curves (each epoch's line of its history)."""
        directory = self.entries[self.name(checkpoint)][0]
        return {"card": read_card(directory), "history": [line for line in read_history(directory) if is_epoch_line(line)]}

    def random_story(self, task_id: int, checkpoint: str | None) -> dict:
        """A random test story of ``task_id`` of the run's task: from ``--data-dir``, else the
        folder the run was trained on when it is still there, else where the task looks itself."""
        config = self.entries[self.name(checkpoint)][1]
        story, source = get_task(config["task"]).random_test_story(task_id, run_data_dir(config, self.data_dir), self._rng)
        return {"story": story, "source": source, "task": task_id}


def _name(directory: Path) -> str:
    """A model directory's name in the API and the page's menu: its path, or ``bundled``."""
    return BUNDLED_NAME if directory == BUNDLED_RUN else str(directory)


def _written(directory: Path) -> int:
    """When a model directory's config.json was last written (its files are complete by then)."""
    return (directory / CONFIG_FILE).stat().st_mtime_ns


class ThisMachineOnly:
    """ASGI middleware for a server on a loopback address: a request whose Host header names
    another machine, or is not a Host header at all (`names_this_machine`), is refused (400), so
    that a web page cannot reach the API through a name of its own that resolves to 127.0.0.1 (DNS
    rebinding)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            hosts = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"]
            if len(hosts) != 1 or not names_this_machine(hosts[0]):  # h11 refuses two; HTTP/1.0 may send none
                host = ", ".join(hosts)
                refusal = JSONResponse({"error": f"Host {host!r} is not this machine; ask http://127.0.0.1:PORT/"}, 400)
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


# RFC 9110 7.2 and RFC 3986 3.2.2-3.2.3: Host = uri-host [":" port], uri-host an IPv6 address in
# brackets, an IPv4 address or a reg-name, port = *DIGIT. Of reg-name only the letters, digits,
# dots and hyphens that can spell localhost or an IPv4 address: no "@" (userinfo), no second ":".
HOST = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::[0-9]*)?")


def names_this_machine(host: str) -> bool:
    """Whether a Host header's value is this machine: localhost (in any case) or a loopback address
    (127.0.0.0/8, [::1]), with a port or without. Not a Host at all, as 'evil.com:80@127.0.0.1'
    (which urlsplit reads as 127.0.0.1, the rest being userinfo) or 'localhost:80:80': False."""
    match = HOST.fullmatch(host)
    if match is None:
        return False
    if match["name"] is not None and match["name"].lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(match["ipv6"] or match["name"])
    except ValueError:  # another name, or not an address
        return False
    return address.is_loopback and (address.version == 6) == (match["ipv6"] is not None)  # "[127.0.0.1]" is not a Host


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.1, ::1, localhost), not an interface others reach."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(runs: Runs) -> Starlette:
    """The page and the API over ``runs``."""

    async def page(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    def list_runs(request: Request) -> JSONResponse:
        return JSONResponse(runs.listing())

    computing = anyio.CapacityLimiter(COMPUTING)

    async def predict(request: Request) -> JSONResponse:
        story, checkpoint, top_k = parse_predict_request(await read_body(request))
        return JSONResponse(await anyio.to_thread.run_sync(runs.answer, story, checkpoint, top_k, limiter=computing))

    def about(request: Request) -> JSONResponse:
        return JSONResponse(runs.about(request.query_params.get("checkpoint")))

    def story(request: Request) -> JSONResponse:
        task = request.query_params.get("task", "")
        if not (task.isascii() and task.isdigit() and len(task) < 4):
            raise UserError("'task' must be a task number, as in /api/story?task=1")
        return JSONResponse(runs.random_story(int(task), request.query_params.get("checkpoint")))

    routes = [Route("/", page), Route("/api/runs", list_runs), Route("/api/predict", predict, methods=["POST"]),
              Route("/api/story", story), Route("/api/about", about), Mount("/static", StaticFiles(directory=STATIC))]
    return Starlette(routes=routes, exception_handlers={UserError: bad_input, HTTPException: http_error,
                                                        ClientDisconnect: client_left})


async def read_body(request: Request) -> bytes:
    """The request body; 413 past MAX_BODY bytes, whether or not it declares its length."""
    too_large = HTTPException(413, f"the request body is over {MAX_BODY:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise too_large
    return bytes(body)


def parse_predict_request(body: bytes) -> tuple[str, str | None, int]:
    """(story, checkpoint or None, top_k) of a POST /api/predict body; a UserError saying what is
    wrong with it."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as e:  # ValueError: malformed JSON, not UTF-8, an integer of 5,000 digits
        where = (f": {e.msg} (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError)
                 else ": nested too deeply" if isinstance(e, RecursionError)
                 else "" if isinstance(e, UnicodeDecodeError) else f": {e}")
        raise UserError(f"the request body is not JSON{where}") from None
    if not isinstance(request, dict):
        raise UserError('expected a JSON object: {"story": "..."}')
    unknown = sorted(request.keys() - FIELDS)
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(FIELDS))})")
    story, checkpoint, top_k = request.get("story"), request.get("checkpoint"), request.get("top_k", TOP_K)
    if not isinstance(story, str):
        raise UserError("'story' must be a string: the story, as `memn2n predict` reads a file")
    try:
        story.encode()
    except UnicodeEncodeError as e:  # JSON can spell a lone surrogate, \ud800, which is not text
        raise UserError(f"'story' is not text: {e.reason} at character {e.start}") from None
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise UserError("'checkpoint' must be the name of a run, as GET /api/runs lists them")
    check_top_k(top_k)
    return story, checkpoint, top_k


async def bad_input(request: Request, error: UserError) -> JSONResponse:
    """400 {"error": LINE}; an argument is named as the request spells it ('top_k')."""
    line = error.render(repr) if isinstance(error, ArgumentError) else str(error)
    return JSONResponse({"error": line}, status_code=400)


async def http_error(request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)


async def client_left(request: Request, error: ClientDisconnect) -> Response:
    """A client that closed its connection before sending all of its body: nobody to answer and
    nothing wrong here, so no traceback on stderr (the response goes nowhere)."""
    return Response(status_code=400)


def serve(checkpoint: Path | None, data_dir: Path | None, host: str, port: int, device: str = "auto",
          roots: Sequence[Path] | None = None) -> None:
    """Serve the page and the API on ``host``:``port`` until interrupted, offering the runs under
    ``roots`` (none given: ./checkpoints). The default model is loaded first, so that a run that
    cannot answer is a one-line error before anything listens."""
    if not host.strip():
        raise UserError("--host must name an address, such as 127.0.0.1, or 0.0.0.0 for every interface")
    runs, note = Runs.find(checkpoint, data_dir, roots or (RUNS_DIR,), device)
    if note:
        print(note, file=sys.stderr)
    runs.load_default()
    try:
        listener = listen(host, port)
    except OSError as e:  # the port taken, an address not of this machine, a name that does not resolve
        reason = os.strerror(e.errno) if isinstance(e.errno, int) and e.errno > 0 else e.strerror or str(e)
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None
    address = f"[{host}]" if ":" in host else host
    print(f"serving http://{address}:{listener.getsockname()[1]}/ (default run: {runs.default}; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    app = ThisMachineOnly(create_app(runs)) if is_loopback(host) else create_app(runs)
    http_server(app).run(sockets=[listener])


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` that says it is TCP, as asyncio's own do.

    socket.create_server makes one of proto 0, and a connection it accepts inherits that; asyncio
    sets TCP_NODELAY only on a socket whose proto is IPPROTO_TCP (asyncio.base_events._set_nodelay).
    Without it, Nagle's algorithm held the second of uvicorn's two writes of a response (the head,
    then the body) until the client's delayed ACK: some 40 ms on each request after the first of a
    keep-alive connection. The same descriptor, wrapped again with the protocol named."""
    made = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    return socket.socket(made.family, made.type, socket.IPPROTO_TCP, fileno=made.detach())


def http_server(app, header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS) -> uvicorn.Server:
    """uvicorn serving ``app`` as `serve` runs it (on sockets from `listen`): a connection whose
    request headers are not all there ``header_timeout`` seconds after they began (or after it
    opened) is closed, and one whose request body is not all there ``body_timeout`` seconds after
    its headers is answered 408 and closed; a request that comes while ``max_connections``
    connections are open (or requests in progress), its own included, is answered 503, so that at
    most that many bodies of MAX_BODY bytes are read at once; warnings and errors only, no line per
    request."""
    protocol = functools.partial(H11WithDeadlines, header_timeout=header_timeout, body_timeout=body_timeout)
    return uvicorn.Server(uvicorn.Config(app, http=protocol, limit_concurrency=max_connections,
                                         log_level="warning", access_log=False))


class H11WithDeadlines(H11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's headers, counted from
    the connection's opening for its first request and from the first byte for the next ones, and
    one for its body, counted from the end of its headers; data that trickles in restarts neither.
    uvicorn times only the wait between two requests of a keep-alive connection
    (timeout_keep_alive) and stops that clock at the next request's first byte: a client that sent
    part of a request line, or nothing, held its connection open for ever (slowloris; issue 29,
    item 9), and so did one that sent its headers and then trickled its body, or stopped, whether
    the app was reading that body or had answered without it. Used whether or not httptools is
    installed."""

    def __init__(self, *args, header_timeout: float, body_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.header_clock: asyncio.TimerHandle | None = None
        self.body_clock: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.header_clock = self.loop.call_later(self.header_timeout, self.headers_too_slow)

    def data_received(self, data: bytes) -> None:
        if self.header_clock is None and self.conn.their_state is h11.IDLE:  # the next request's first bytes
            self.header_clock = self.loop.call_later(self.header_timeout, self.headers_too_slow)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or the request was refused)
            self.stop_header_clock()
        if self.conn.their_state is h11.SEND_BODY and self.body_clock is None:  # the headers are in, the body is not
            self.body_clock = self.loop.call_later(self.body_timeout, self.body_too_slow)
        elif self.conn.their_state is not h11.SEND_BODY:  # the body is in (or the request was refused)
            self.stop_body_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_clock()
        self.stop_body_clock()
        super().connection_lost(exc)

    def stop_header_clock(self) -> None:
        if self.header_clock is not None:
            self.header_clock.cancel()
            self.header_clock = None

    def stop_body_clock(self) -> None:
        if self.body_clock is not None:
            self.body_clock.cancel()
            self.body_clock = None

    def headers_too_slow(self) -> None:
        """Close the connection, as uvicorn closes one idle past timeout_keep_alive: no response,
        since no request arrived to answer."""
        self.header_clock = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def body_too_slow(self) -> None:
        """Answer 408 {"error": LINE} and close the connection, as uvicorn answers a malformed
        request (send_400_response); the app is told that its client left, as when it does
        (connection_lost): its wait for the body ends (Starlette's ClientDisconnect, `client_left`)
        and its answer, if it makes one, goes nowhere. An app that has begun answering, or has
        answered without reading the body, has its connection closed."""
        self.body_clock = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if not self.cycle.response_started:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            body = json.dumps({"error": f"the request body took over {self.body_timeout:g} seconds"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            response = h11.Response(status_code=408, headers=headers, reason=HTTPStatus(408).phrase)
            for event in (response, h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
        self.transport.close()
