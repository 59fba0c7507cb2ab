// The page of `memn2n serve`: reads the runs, sends the story to POST /api/predict and draws, for
// each question, its answer, the top-k and the paper's Figure 2 (attention of every hop over the
// sentences in memory); for the chosen run, its model card's summary and learning curves.
// Everything the user or the model wrote is set as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let runs = [];
let asked = 0;  // requests to /api/predict so far: only the latest one's answers are drawn

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function busy(on) {
  for (const id of ["ask", "random"]) $(id).disabled = on;
}

function taskNames(run) {
  const t = run.tasks;
  const contiguous = t.every((x, i) => i === 0 || x === t[i - 1] + 1);
  if (t.length === 1) return `task ${t[0]}`;
  return contiguous ? `tasks ${t[0]}–${t[t.length - 1]}` : `tasks ${t.join(", ")}`;
}

function selectedRun() {
  return runs.find((run) => run.checkpoint === $("run").value);
}

function fillTasks() {
  const select = $("task");
  const previous = select.value;
  select.replaceChildren(...selectedRun().tasks.map((t) => new Option(t, t)));
  if (selectedRun().tasks.map(String).includes(previous)) select.value = previous;
}

// The runs to choose from, asked for again each time the window gets focus back (a run trained
// meanwhile is offered); the run chosen stays chosen while the server still offers it.
async function loadRuns() {
  const previous = $("run").value;
  runs = await api("/api/runs");
  $("run").replaceChildren(...runs.map((run) =>
    new Option(`${run.checkpoint} · ${run.task}, ${taskNames(run)}`, run.checkpoint, run.default, run.default)));
  if (runs.some((run) => run.checkpoint === previous)) $("run").value = previous;
  fillTasks();
  if ($("run").value !== previous) await loadAbout();
}

function cell(row, className, text) {
  const td = row.insertCell();
  td.className = className;
  td.textContent = text;
  return td;
}

function header(row, text) {
  const th = document.createElement("th");
  th.textContent = text;
  row.append(th);
}

// Figure 2: a row per sentence in memory, a column per hop shaded by its attention p, the largest
// of each hop outlined; a Support column when the story names the supporting facts.
function fillHops(table, answer) {
  const known = "supporting" in answer;
  const support = new Set(answer.supporting || []);
  const head = table.tHead.rows[0];
  if (known) header(head, "Support");
  answer.attention.forEach((_, k) => header(head, `Hop ${k + 1}`));
  const tops = answer.attention.map((p) => p.indexOf(Math.max(...p)));
  answer.story.forEach((sentence, i) => {
    const row = table.tBodies[0].insertRow();
    cell(row, "n", i + 1);
    cell(row, "sentence", sentence);
    if (known) cell(row, "support", support.has(i) ? "✓" : "");
    if (support.has(i)) row.classList.add("supporting");
    answer.attention.forEach((p, k) => {
      const td = cell(row, "hop", p[i].toFixed(2));
      td.style.background = `rgba(36, 86, 200, ${Math.min(1, p[i]).toFixed(3)})`;
      if (p[i] > 0.45) td.style.color = "#fff";
      if (tops[k] === i) td.classList.add("top");
    });
  });
}

function topItem({ answer, probability }) {
  const li = document.createElement("li");
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.append(document.createElement("i"));
  bar.firstChild.style.width = `${(100 * probability).toFixed(1)}%`;
  li.append(answer, bar, probability.toFixed(3));
  return li;
}

function card(answer) {
  const node = $("answer-card").content.firstElementChild.cloneNode(true);
  node.querySelector(".question").textContent = answer.question;
  node.querySelector(".word").textContent = answer.answer;
  node.querySelector(".probability").textContent = `p = ${answer.probability.toFixed(4)}`;
  if ("correct" in answer) {
    const verdict = node.querySelector(".verdict");
    verdict.textContent = answer.correct ? "right" : `wrong: expected ${answer.expected}`;
    verdict.classList.add(answer.correct ? "right" : "wrong");
  }
  node.querySelector(".top-k").replaceChildren(...answer.top_k.map(topItem));
  fillHops(node.querySelector("table.hops"), answer);
  return node;
}

async function ask() {
  const request = ++asked;
  busy(true);
  try {
    const answers = await api("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ story: $("story").value, checkpoint: $("run").value }),
    });
    if (request !== asked) return;  // a later question (another run, another story) is on its way
    showError("");
    $("answers").replaceChildren(...answers.map(card));
  } catch (error) {
    if (request !== asked) return;
    showError(error.message);
    $("answers").replaceChildren();
  } finally {
    if (request === asked) busy(false);
  }
}

function svg(name, attributes, text) {
  const node = document.createElementNS($("curves").namespaceURI, name);  // the page's <svg>'s: SVG's own
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Train and valid error (%) per epoch, the end of linear start dashed: the run's learning curves.
function drawCurves(history) {
  const box = $("curves");
  const epochs = history.filter((line) => "valid_error" in line || "train_error" in line);
  box.replaceChildren();
  box.hidden = epochs.length < 2;
  if (box.hidden) return;
  const [left, right, top, bottom] = [34, 312, 8, 112];
  const highest = Math.max(...epochs.flatMap((l) => [l.train_error, l.valid_error].filter(Number.isFinite)), 1);
  const x = (i) => left + (right - left) * i / (epochs.length - 1);
  const y = (value) => bottom - (bottom - top) * value / highest;
  box.append(svg("line", { x1: left, y1: bottom, x2: right, y2: bottom, class: "axis" }),
    svg("line", { x1: left, y1: top, x2: left, y2: bottom, class: "axis" }),
    svg("text", { x: left - 4, y: top + 4, class: "tick end" }, highest.toFixed(0)),
    svg("text", { x: left - 4, y: bottom, class: "tick end" }, "0"),
    svg("text", { x: left, y: bottom + 14, class: "tick" }, "1"),
    svg("text", { x: right, y: bottom + 14, class: "tick end" }, String(epochs.length)),
    svg("text", { x: (left + right) / 2, y: bottom + 26, class: "tick middle" }, "epoch · error (%)"));
  const linear = epochs.findLastIndex((l) => l.phase === "linear");
  if (linear >= 0 && linear < epochs.length - 1) {
    box.append(svg("line", { x1: x(linear), y1: top, x2: x(linear), y2: bottom, class: "linear-start" }),
      svg("text", { x: x(linear) + 3, y: top + 8, class: "tick" }, "linear start ends"));
  }
  for (const split of ["train", "valid"]) {
    const points = epochs.map((l, i) => [i, l[`${split}_error`]]).filter(([, v]) => Number.isFinite(v));
    if (!points.length) continue;
    box.append(svg("polyline", { points: points.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), class: `curve ${split}` }),
      svg("text", { x: right, y: y(points[points.length - 1][1]) - 3, class: `tick end ${split}` }, split));
  }
}

function summaryLine(run, card) {
  if (!card) return `${run.task}, ${taskNames(run)}: a run written before model cards`;
  const model = card.model || {};
  const results = card.results || {};
  const ours = Number.isFinite(results.mean_test_error) ? `test error ${results.mean_test_error.toFixed(1)}%` : "";
  const paper = card.paper && Number.isFinite(card.paper.mean_test_error)
    ? ` (the paper's ${card.paper.column}: ${card.paper.mean_test_error}%)` : "";
  const made = [card.memn2n_version && `memn2n ${card.memn2n_version}`, card.commit && card.commit.slice(0, 7),
    card.created && card.created.slice(0, 10)].filter(Boolean).join(", ");
  return `${card.task} ${taskNames(run)}${card.joint ? " (joint)" : ""} · ${model.hops} hops, d = ${model.dim}` +
    ` · ${ours}${paper} · ${made}`;
}

async function loadAbout() {
  const run = selectedRun();
  try {
    const about = await api(`/api/about?${new URLSearchParams({ checkpoint: run.checkpoint })}`);
    if (selectedRun() !== run) return;  // another run was chosen meanwhile
    $("summary").textContent = summaryLine(run, about.card);
    drawCurves(about.history);
  } catch (error) {
    $("summary").textContent = `no model card: ${error.message}`;
    drawCurves([]);
  }
}

async function randomStory() {
  const query = new URLSearchParams({ task: $("task").value, checkpoint: $("run").value });
  try {
    const drawn = await api(`/api/story?${query}`);
    $("story").value = drawn.story;
    $("story-source").textContent = `a test story of task ${drawn.task}, from ${drawn.source}`;
  } catch (error) {
    showError(error.message);
    return;
  }
  await ask();
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask").addEventListener("click", ask);
  $("random").addEventListener("click", randomStory);
  $("story").addEventListener("input", () => { $("story-source").textContent = ""; });
  $("story").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !$("ask").disabled) ask();
  });
  $("run").addEventListener("change", () => {
    fillTasks();
    loadAbout();
    if ($("answers").children.length) ask();
  });
  loadRuns().catch((error) => showError(error.message));
  window.addEventListener("focus", () => loadRuns().catch((error) => showError(error.message)));
});
