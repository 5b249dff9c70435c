// The submit page: datasets dropped or chosen, uploaded in parts (resumable), the parameter file
// checked before anything is uploaded, and submit.json written last by the server.
"use strict";
const form = document.getElementById("submit-form");
const BASE = form.dataset.base;
const files = new Map();  // name -> {file, row, bar, note}
const list = document.getElementById("file-list");
const paramText = document.getElementById("param-text");
const paramName = document.getElementById("param-name");
const paramError = document.getElementById("param-error");
const datasetsError = document.getElementById("datasets-error");
const status = document.getElementById("submit-status");
const estimateLine = document.getElementById("estimate");
const instanceType = document.getElementById("instance-type");
const button = document.getElementById("submit");
const RETRIES = 8;

function addFiles(chosen) {
  for (const file of chosen) {
    if (files.has(file.name)) files.get(file.name).row.remove();
    const bar = el("progress", {max: String(Math.max(file.size, 1)), value: "0"});
    const note = el("span", {class: "note", text: bytes(file.size)});
    const remove = el("button", {type: "button", class: "link", text: "remove", "aria-label": `remove ${file.name}`});
    const row = el("li", {"data-name": file.name}, el("span", {class: "name", text: file.name}), bar, note, remove);
    remove.addEventListener("click", () => { files.delete(file.name); row.remove(); refreshEstimate(); });
    files.set(file.name, {file, row, bar, note});
    list.append(row);
  }
  datasetsError.textContent = "";
  refreshEstimate();
}

const drop = document.getElementById("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  addFiles([...event.dataTransfer.files]);
});
document.getElementById("files").addEventListener("change", (event) => addFiles([...event.target.files]));
document.getElementById("param-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  paramName.value = file.name;
  paramText.value = await file.text();
  refreshEstimate();
});

function checkBody() {
  return {name: paramName.value.trim(), text: paramText.value, instance_type: instanceType ? instanceType.value : null,
          datasets: [...files.keys()], count: Math.max(files.size, 1)};
}

function showEstimate(estimate) {
  estimateLine.textContent = estimate
    ? `Estimated cost: $${estimate.dollars.toFixed(2)} (${Math.max(files.size, 1)} dataset(s), up to ` +
      `${estimate.minutes} min each on ${estimate.instance_type}).`
    : "";
}

let pending = null;
function refreshEstimate() {
  clearTimeout(pending);
  pending = setTimeout(async () => {
    try {
      showEstimate((await api("POST", `${BASE}/check`, checkBody())).estimate);
      paramError.textContent = "";
    } catch (error) {
      if (error.field === "parameters") paramError.textContent = error.message;
      estimateLine.textContent = "";
    }
  }, 300);
}
paramText.addEventListener("input", refreshEstimate);
paramName.addEventListener("input", refreshEstimate);
if (instanceType) instanceType.addEventListener("change", refreshEstimate);

function sendPart(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url);
    request.setRequestHeader("X-CSRF-Token", CSRF);
    request.upload.onprogress = (event) => onProgress(event.loaded);
    request.onload = () => {
      let data = {};
      try { data = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 200) resolve(data);
      else if (request.status >= 500 || request.status === 0) reject(new ApiError(data.error || "lost", null, request.status));
      else reject(new ApiError(data.error || `The server answered ${request.status}.`, null, request.status));
    };
    request.onerror = () => reject(new ApiError("The connection dropped.", null, 0));
    request.send(blob);
  });
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function upload(entry) {
  const {file, bar, note} = entry;
  const remembered = `neurocaas-upload:${BASE}:${file.name}:${file.size}:${file.lastModified}`;
  let failures = 0;
  for (;;) {
    try {
      const begun = await api("POST", `${BASE}/uploads`,
        {name: file.name, size: file.size, upload_id: localStorage.getItem(remembered)});
      localStorage.setItem(remembered, begun.upload_id);
      const done = new Set(begun.done);
      const partSize = begun.part_size;
      const sizeOf = (n) => Math.min(n * partSize, file.size) - (n - 1) * partSize;
      let sent = [...done].reduce((total, n) => total + sizeOf(n), 0);
      bar.value = sent;
      const query = `upload_id=${encodeURIComponent(begun.upload_id)}&name=${encodeURIComponent(file.name)}&size=${file.size}`;
      for (let n = 1; n <= begun.parts; n++) {
        if (done.has(n)) continue;
        note.textContent = `${bytes(sent)} of ${bytes(file.size)}`;
        const blob = file.slice((n - 1) * partSize, Math.min(n * partSize, file.size));
        await sendPart(`${BASE}/uploads/parts/${n}?${query}`, blob,
                       (loaded) => { bar.value = sent + loaded; });
        sent += blob.size;
        bar.value = sent;
        failures = 0;
      }
      await api("POST", `${BASE}/uploads/complete`, {upload_id: begun.upload_id, name: file.name, size: file.size});
      localStorage.removeItem(remembered);
      bar.value = bar.max;
      note.textContent = `uploaded (${bytes(file.size)})`;
      entry.row.classList.add("done");
      return;
    } catch (error) {
      const lost = error.status === 0 || error.status >= 500;
      if (!lost || ++failures > RETRIES) {
        note.textContent = lost ? "connection lost: submit again to resume" : error.message;
        entry.row.classList.add("failed");
        throw error;
      }
      note.textContent = "connection dropped: resuming…";
      await pause(Math.min(500 * 2 ** failures, 8000));
    }
  }
}

async function uploadAll(entries, parallel = 2) {
  const queue = [...entries];
  const worker = async () => { while (queue.length) await upload(queue.shift()); };
  await Promise.all(Array.from({length: Math.min(parallel, queue.length)}, worker));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  paramError.textContent = datasetsError.textContent = status.textContent = "";
  if (!files.size) { datasetsError.textContent = "Add at least one dataset."; return; }
  button.disabled = true;
  try {
    status.textContent = "Checking the parameter file…";
    showEstimate((await api("POST", `${BASE}/check`, checkBody())).estimate);
    status.textContent = "Uploading…";
    await uploadAll([...files.values()].filter((entry) => !entry.row.classList.contains("done")));
    status.textContent = "Starting the job…";
    const body = checkBody();
    const started = await api("POST", `${BASE}/submit`, {datasets: body.datasets, config_name: body.name,
      config_text: body.text, instance_type: body.instance_type});
    status.textContent = `Submitted job ${started.job_id}.`;
    window.location.assign(started.url);
  } catch (error) {
    if (error.field === "parameters") { paramError.textContent = error.message; status.textContent = ""; }
    else status.textContent = error.message;
    button.disabled = false;
  }
});
