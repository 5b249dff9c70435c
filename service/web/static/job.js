// The job page: polls the job's state every second until it ends, without reloading the page.
"use strict";
const root = document.getElementById("job");
const API = root.dataset.api;
const BASE = root.dataset.base;
const stateBadge = document.getElementById("job-state");
const cancelButton = document.getElementById("cancel");
const shownFigures = new Set();
let timer = null;

function setState(node, state, kind) {
  node.textContent = state;
  node.className = `state ${kind}`;
}

function renderDatasets(datasets) {
  const body = document.getElementById("datasets");
  body.replaceChildren(...datasets.map((d) => {
    const state = el("span", {});
    setState(state, d.state, d.state_class);
    const log = el("a", {href: `${BASE}/logs/${encodeURIComponent(d.label)}`, target: "_blank", text: "log"});
    return el("tr", {"data-dataset": d.label}, el("td", {text: d.label}), el("td", {}, state),
      el("td", {text: d.elapsed}), el("td", {text: d.cpu || ""}), el("td", {text: d.memory || ""}),
      el("td", {class: "output", text: d.last_output}), el("td", {}, log));
  }));
}

function renderResults(results) {
  document.getElementById("no-results").hidden = results.length > 0;
  const all = document.getElementById("download-all");
  all.hidden = results.length === 0;
  all.href = `${BASE}/results.zip`;
  document.getElementById("result-files").replaceChildren(...results.map((r) =>
    el("li", {}, el("a", {href: r.url, target: "_blank", text: r.path}), el("span", {class: "note", text: bytes(r.size)}),
       el("a", {href: `${r.url}?download=1`, class: "download", text: "download"}))));
  const figures = document.getElementById("figures");
  for (const r of results.filter((r) => r.image && !shownFigures.has(r.path))) {
    shownFigures.add(r.path);
    figures.append(el("figure", {}, el("img", {src: r.url, alt: r.path, loading: "lazy"}),
                      el("figcaption", {text: r.path})));
  }
}

function render(job) {
  setState(stateBadge, job.state, job.state_class);
  const facts = [];
  if (job.instance_type) facts.push(`on ${job.instance_type}`);
  if (job.started) facts.push(`started ${job.started}`);
  if (job.finished_at) facts.push(`ended ${job.finished_at}`);
  if (job.cost) facts.push(`cost ${job.cost}`);
  document.getElementById("job-facts").textContent = facts.join(" · ");
  document.getElementById("job-reason").textContent = job.reason || "";
  document.getElementById("progress").textContent = job.total ? `${job.finished} of ${job.total} finished` : "";
  renderDatasets(job.datasets);
  renderResults(job.results);
  document.getElementById("certificate").textContent = job.certificate || "(no certificate yet)";
  cancelButton.hidden = job.final || !job.found;
}

async function poll() {
  const live = document.getElementById("live");
  try {
    const job = await api("GET", API);
    render(job);
    live.textContent = job.final ? "The job has ended." : `Live · updated ${new Date().toLocaleTimeString()}`;
    if (job.final) return;
  } catch (error) {
    live.textContent = error.message;
  }
  timer = setTimeout(poll, 1000);
}

cancelButton.addEventListener("click", async () => {
  if (!window.confirm("Cancel this job? Its running datasets are stopped and cannot be resumed.")) return;
  cancelButton.disabled = true;
  try {
    const answer = await api("POST", `${API}/cancel`, {});
    document.getElementById("live").textContent = `Cancelling: ${answer.stopped} instance(s) stopped.`;
    clearTimeout(timer);
    poll();
  } catch (error) {
    document.getElementById("job-reason").textContent = error.message;
  } finally {
    cancelButton.disabled = false;
  }
});

poll();
