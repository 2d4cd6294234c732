// The page: pick a workflow, edit its parameters, run a batch of tasks, watch them, keep their images; open a
// workflow saved from ComfyUI and publish it for others, with a link to its form.
import { AgentApi, describeError } from "./api.js";
import { fingerprint } from "./identity.js";
import { discover, fieldsOf, promptFor, valueFor } from "./params.js";

// The history is kept per key, in a slot named from its fingerprint (`comfyui-agent.runs.<16 hex>`), and in the
// anonymous slot for an agent that asks for no key. HISTORY_KEY itself is the one list of the page before keys.
const HISTORY_KEY = "comfyui-agent.runs";
const ANONYMOUS = `${HISTORY_KEY}.anonymous`;
const TOKEN_KEY = "comfyui-agent.token";  // an API key or the agent's token: the same field
const HISTORY_LIMIT = 50;
const POLL_MS = 600;
const MIME = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", webp: "image/webp", gif: "image/gif" };

const $ = (id) => document.getElementById(id);
const api = new AgentApi(() => state.key);
// `definition`: the name of the agent's workflow being run through its parameters; null for a pasted graph.
// `editor`: a graph of one's own as ComfyUI's editor saved it (`workflow` is then the agent's conversion of it);
// `proposals`: the parameters the agent found in a graph of one's own, offered for publishing.
// `key`: the key signed in with ("" for none); `shown`: the history slot on show, null when the agent refused the
// key (or asks for one); `galleries`: each key's images made since the page opened; `signIns`: the latest sign-in.
const state = { workflow: null, definition: null, editor: null, proposals: [], name: "", fields: [],
                values: new Map(), batch: [], examples: new Map(), readinessTimer: 0,
                key: "", shown: null, galleries: new Map(), signIns: 0 };
const NAME_RULE = /[^A-Za-z0-9_-]+/g;

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

function showWorkflowError(message) {
  $("workflow-error").textContent = message;
  $("workflow-error").hidden = !message;
}

// ---- workflow ---------------------------------------------------------------------------------------------

const isEditorGraph = (data) => Boolean(data) && Array.isArray(data.nodes) && "links" in data;

function checkWorkflow(data) {
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error("A workflow is a JSON object of nodes.");
  const prompt = "prompt" in data && typeof data.prompt === "object" ? data.prompt : data;
  const nodes = Object.values(prompt);
  if (!nodes.length || !nodes.every((node) => node && typeof node === "object" && node.class_type)) {
    throw new Error("Every node needs a class_type: is this an API-format workflow?");
  }
  return prompt;
}

// `about`: what the page says of the workflow under the list: its description, or a pasted file's name.
async function showFields(fields, name, about) {
  showWorkflowError("");
  state.name = name;
  state.fields = fields;
  state.values = new Map(fields.map((field) => [field.key, field.value]));
  $("workflow-name").textContent = about;
  await renderParams();
  for (const id of ["params-panel", "run-panel"]) $(id).hidden = false;
}

// A name the agent takes for a workflow, from a file's name.
const nameFrom = (file) => file.replace(/\.(json|png)$/i, "").replace(NAME_RULE, "-").replace(/^-+|-+$/g, "").slice(0, 64)
  || "workflow";

// A graph of one's own: the editor's format is converted by the agent (which also proposes what to publish);
// the API format is run as it is, and offered for publishing when the agent takes it.
async function useWorkflow(data, name) {
  const graph = isEditorGraph(data) ? data : null;
  let proposal = { ok: false };
  try {
    proposal = await api.propose({ name: nameFrom(name), graph: graph || checkWorkflow(data) });
    if (graph && !proposal.ok) throw new Error(describeError(proposal.status, proposal.data));
    state.workflow = graph ? proposal.data.graph : checkWorkflow(data);
  } catch (error) {
    showWorkflowError(error.message);
    return;
  }
  state.definition = null;
  state.editor = graph;
  await showFields(discover(state.workflow), name, name);
  showProposal(proposal, name);
}

// ---- publishing -------------------------------------------------------------------------------------------

function showProposal(proposal, name) {
  $("publish-panel").hidden = !proposal.ok;  // without the token the agent says nothing: no offer
  $("publish-result").hidden = true;
  $("publish-error").hidden = true;
  if (!proposal.ok) return;
  state.proposals = proposal.data.definition.parameters;
  $("publish-name").value = nameFrom(name);
  $("publish-title").value = "";
  $("publish-params").replaceChildren(...state.proposals.map((parameter) => {
    const keep = element("input", { type: "checkbox", checked: true, id: `keep-${parameter.name}` });
    const title = element("input", { value: parameter.title || parameter.name, id: `title-${parameter.name}` });
    return element("li", {}, element("label", {}, keep, ` ${parameter.name} `), title);
  }));
}

async function publish() {
  const parameters = state.proposals.filter((parameter) => $(`keep-${parameter.name}`).checked)
    .map((parameter) => ({ ...parameter, title: $(`title-${parameter.name}`).value }));
  const name = $("publish-name").value.trim();
  const reply = await api.publish({ name, title: $("publish-title").value.trim(),
                                    description: $("publish-description").value.trim(),
                                    graph: state.editor || state.workflow, parameters });
  $("publish-error").hidden = reply.ok;
  if (!reply.ok) { $("publish-error").textContent = describeError(reply.status, reply.data); return; }
  const link = new URL(`?workflow=${encodeURIComponent(name)}`, window.location.href).href;
  Object.assign($("publish-link"), { href: link, textContent: link });
  $("publish-version").textContent = `${name}@${reply.data.version}`;
  $("publish-result").hidden = false;
  if (!state.examples.has(name)) $("examples").append(element("option", { value: name, textContent: reply.data.title }));
  state.examples.set(name, reply.data);
  $("examples").value = name;
  await useDefinition(name);
}

// The workflow a PNG saved by ComfyUI carries in its text chunks (`workflow`, else the API `prompt`).
async function workflowOfImage(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const view = new DataView(bytes.buffer);
  const texts = {};
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    const zero = data.indexOf(0);
    const key = new TextDecoder("latin1").decode(data.subarray(0, zero));
    if (type === "tEXt") texts[key] = new TextDecoder("latin1").decode(data.subarray(zero + 1));
    if (type === "iTXt" && data[zero + 1] === 0) {  // uncompressed: language and translated keyword, then UTF-8
      const start = data.indexOf(0, data.indexOf(0, zero + 3) + 1) + 1;
      texts[key] = new TextDecoder().decode(data.subarray(start));
    }
    if (type === "IEND") break;
    at += 12 + length;
  }
  return texts.workflow || texts.prompt || null;
}

async function openFile(file) {
  if (!/\.png$/i.test(file.name)) return readJson(await file.text(), file.name);
  const text = await workflowOfImage(file);
  if (!text) { showWorkflowError(`${file.name} carries no workflow: it was not saved by ComfyUI.`); return undefined; }
  return readJson(text, file.name);
}

// One of the agent's workflows: the same parameters its API takes, runs through /api/workflows/{name}/run.
async function useDefinition(name) {
  const example = state.examples.get(name);
  const reply = await api.definition(name);
  if (reply.status === 401) {  // without the token yet: the example's graph is public, its runs will ask for it
    const graph = await api.workflow(`${name}.json`);
    if (graph.ok) await useWorkflow(graph.data, example ? example.title : name);
    else showWorkflowError(describeError(graph.status, graph.data));
    return;
  }
  if (!reply.ok) { showWorkflowError(describeError(reply.status, reply.data)); return; }
  state.workflow = reply.data.graph;
  state.editor = null;
  state.definition = reply.data.name;
  await showFields(fieldsOf(reply.data), reply.data.title, reply.data.description);
}

// The examples by title; the warm-up graph (nothing to set) is not among them.
async function loadExamples() {
  const reply = await api.workflows();
  if (!reply.ok) return;
  const chosen = $("examples").value;
  state.examples.clear();
  for (const option of [...$("examples").options]) if (option.value) option.remove();
  for (const example of reply.data.workflows) {
    state.examples.set(example.name, example);
    $("examples").append(element("option", { value: example.name, textContent: example.title }));
  }
  if (state.examples.has(chosen)) $("examples").value = chosen;
}

// A workflow of one's own (opened or pasted): the examples list no longer names the one shown.
function readJson(text, name) {
  $("examples").value = "";
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    showWorkflowError(`${name} is not valid JSON.`);
    return undefined;
  }
  return useWorkflow(data, name);
}

// ---- parameters -------------------------------------------------------------------------------------------

async function optionsOf(field) {
  if (field.options) return field.options;
  if (!field.optionsFrom) return [field.value];
  const [nodeClass, input] = field.optionsFrom;
  const reply = await api.objectInfo(nodeClass);
  const spec = reply.ok && reply.data[nodeClass] && reply.data[nodeClass].input.required[input];
  return spec && Array.isArray(spec[0]) ? spec[0] : [field.value];
}

function numberInput(field, key) {
  const input = element("input", { type: "number", value: field.value, name: key });
  for (const bound of ["min", "max", "step"]) if (field[bound] !== undefined) input[bound] = field[bound];
  if (field.type === "seed") { input.min = -1; input.step = 1; }
  if (field.type === "int") input.step = field.step || 1;
  if (field.type === "float" && field.step === undefined) input.step = "any";
  return input;
}

function imageInput(field, key) {
  const picker = element("input", { type: "file", accept: "image/*", name: key });
  const preview = element("img", { alt: "", hidden: true });
  const wrap = element("div", {}, picker, element("div", { className: "muted", textContent: `In use now: ${field.value}` }), preview);
  picker.addEventListener("change", () => {
    const file = picker.files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => { state.values.set(key, reader.result); preview.src = reader.result; preview.hidden = false; };
    reader.readAsDataURL(file);
  });
  return wrap;
}

// A list ComfyUI fills with the models it has, and it has none: what to do instead of an empty picker.
function noChoice(field, key) {
  const folder = field.modelsFolder || "models";
  return element("p", { className: "notice", id: key, textContent:
    `No ${field.title.toLowerCase()} is installed. Put one in ComfyUI's ${folder} folder (on Function Compute: `
    + `${folder} on the NAS), then reload this page.` });
}

async function fieldInput(field, key) {
  if (field.type === "image") return imageInput(field, key);
  if (field.type === "boolean") {
    const box = element("input", { type: "checkbox", checked: Boolean(field.value), name: key });
    box.addEventListener("change", () => state.values.set(key, box.checked));
    return box;
  }
  let input;
  if (field.type === "choice") {
    const options = await optionsOf(field);
    if (!options.length) return noChoice(field, key);
    input = element("select", { name: key });
    for (const option of options) input.append(element("option", { value: option, textContent: option }));
    if (!options.includes(field.value)) {  // never send a default this ComfyUI lacks: take one it has
      state.values.set(key, options[0]);
      field.note = `${field.value} is not installed here: ${options[0]} is used instead.`;
    }
    input.value = state.values.get(key);
  } else if (field.type === "text" || field.type === "textarea") {
    input = element("textarea", { value: field.value, name: key });
  } else {
    input = numberInput(field, key);
  }
  input.addEventListener("input", () => state.values.set(key, input.value));
  return input;
}

// The fields, grouped by node for a graph of one's own (a definition's are one group without a title).
async function renderParams() {
  const form = $("params");
  form.replaceChildren();
  const groups = new Map([["", form]]);
  for (const field of state.fields) {
    if (!groups.has(field.nodeTitle)) {
      groups.set(field.nodeTitle, element("fieldset", {}, element("legend", { textContent: field.nodeTitle })));
      form.append(groups.get(field.nodeTitle));
    }
    const key = field.key;
    const label = element("label", { textContent: field.title, htmlFor: key });
    const input = await fieldInput(field, key);
    input.id = key;
    const hints = [];
    if (field.note) hints.push(element("div", { className: "note", textContent: field.note }));
    if (field.description) hints.push(element("div", { className: "muted", textContent: field.description }));
    groups.get(field.nodeTitle).append(element("div", { className: "field" }, label,
                                               element("div", { className: "control" }, input, ...hints)));
  }
  if (!state.fields.length) form.append(element("p", { className: "muted", textContent: "Nothing to edit in this workflow." }));
}

// ---- runs -------------------------------------------------------------------------------------------------

function history(slot = state.shown) {
  if (!slot) return [];
  try { return JSON.parse(localStorage.getItem(slot)) || []; } catch { return []; }
}

// Into the slot of the key the run was started with, whoever is signed in when it ends.
async function remember(entry, key) {
  const slot = await slotOf(key);
  const kept = history(slot).filter((old) => old.taskId !== entry.taskId);
  kept.unshift(entry);
  localStorage.setItem(slot, JSON.stringify(kept.slice(0, HISTORY_LIMIT)));
  if (slot === state.shown) renderHistory();
}

function fractionDone(progress) {
  const nodes = Object.values(progress || {});
  if (!nodes.length) return 0;
  return nodes.reduce((sum, node) => sum + (node.max ? node.value / node.max : 0), 0) / nodes.length;
}

// How far the batch is, with the runs that failed or were canceled counted as such, never as done.
function updateOverall() {
  const runs = state.batch;
  const count = (status) => runs.filter((run) => run.status === status).length;
  const [succeeded, failed, canceled] = ["succeeded", "failed", "canceled"].map(count);
  $("overall").value = runs.length ? runs.reduce((sum, run) => sum + run.fraction, 0) / runs.length : 0;
  $("overall-text").textContent = !runs.length ? "" : [`${succeeded} of ${runs.length} done`,
    failed && `${failed} failed`, canceled && `${canceled} canceled`].filter(Boolean).join(" · ");
  $("overall-box").dataset.state = !runs.length ? "idle" : failed ? "failed"
    : runs.every((run) => run.finished) ? "done" : "running";
}

// An image in the output store has its signed URL; otherwise its base64 came with the task.
function figureFor(image, base64) {
  const extension = image.filename.split(".").pop().toLowerCase();
  const url = image.url || `data:${MIME[extension] || "application/octet-stream"};base64,${base64}`;
  const link = element("a", { href: url, download: image.filename, title: image.filename, textContent: "Download" });
  const full = element("a", { href: url, target: "_blank", rel: "noopener", title: "Full size" },
                       element("img", { src: url, alt: image.filename }));  // opens the image at its own size
  return element("figure", {}, full, element("figcaption", {}, link));
}

function imagesOf(task) {
  const figures = [];
  for (const node of Object.values(task.progress || {})) {
    (node.images || []).forEach((image, index) => {
      const base64 = node.results && node.results[index];
      if (image.url || base64) figures.push(figureFor(image, base64));
    });
  }
  return figures;
}

function runCard(run) {
  const status = element("span", { className: "status", textContent: "starting" });
  const cancel = element("button", { type: "button", textContent: "Cancel" });
  const title = element("span", { textContent: run.label });
  const elapsed = element("span", { className: "elapsed muted" });
  const bar = element("progress", { max: 1, value: 0 });
  const error = element("p", { className: "error", hidden: true });
  const images = element("div", { className: "images" });
  const card = element("li", { className: "run" },
    element("header", {}, title, status, elapsed, cancel), bar, error, images);
  card.dataset.task = run.taskId;
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    const reply = await run.api.cancel(run.taskId);
    if (!reply.ok) cancel.disabled = false;
  });
  return { card, status, elapsed, cancel, bar, error, images };
}

function setStatus(run, status) {
  run.status = status;
  run.ui.card.dataset.status = status;
  run.ui.status.textContent = status;
}

// A run that has ended has nothing left to cancel or to watch grow.
function end(run) {
  run.finished = true;
  run.fraction = 1;
  run.ui.cancel.hidden = true;
  run.ui.bar.hidden = true;
}

function fail(run, message, status = "failed") {
  end(run);
  setStatus(run, status);
  run.ui.error.textContent = message;
  run.ui.error.hidden = false;
  updateOverall();
}

async function follow(run) {
  for (;;) {
    const reply = await run.api.task(run.taskId);
    if (!reply.ok) { fail(run, describeError(reply.status, reply.data)); break; }
    const task = reply.data;
    setStatus(run, task.status);
    run.fraction = task.status === "succeeded" ? 1 : fractionDone(task.progress);
    run.ui.bar.value = run.fraction;
    updateOverall();
    if (task.status === "succeeded") { finish(run, task); break; }
    if (task.status === "failed" || task.status === "canceled") {
      fail(run, describeError(0, task.error), task.status);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  await remember({ taskId: run.taskId, workflow: run.workflow, label: run.label, createdAt: run.createdAt,
                   status: run.ui.card.dataset.status }, run.key);
}

function finish(run, task) {
  end(run);
  run.ui.elapsed.textContent = `${(task.finished_at - task.created_at).toFixed(1)} s`;
  const figures = imagesOf(task);
  run.ui.images.append(...figures);
  const copies = figures.map((figure) => figure.cloneNode(true));
  state.galleries.set(run.key, [...copies, ...(state.galleries.get(run.key) || [])]);
  if (run.key === state.key) renderGallery();  // another key's images wait for that key to sign in again
  updateOverall();
}

function paramsFor(index) {
  const params = {};
  const seeds = {};
  for (const field of state.fields) {
    params[field.key] = valueFor(field, state.values.get(field.key), index);
    if (field.type === "seed") seeds[field.key] = params[field.key];
  }
  return { params, seeds };
}

async function startRun(index) {
  const taskId = `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const { prompt, params, seeds } = state.definition
    ? paramsFor(index) : promptFor(state.workflow, state.fields, state.values, index);
  const seedText = Object.values(seeds).join(", ");
  const run = { taskId, label: `Run ${index + 1}${seedText ? ` · seed ${seedText}` : ""}`, fraction: 0,
                finished: false, createdAt: Date.now(), workflow: state.name, key: state.key,
                api: api.as(state.key) };
  run.ui = runCard(run);
  $("runs").prepend(run.ui.card);
  state.batch.push(run);
  // a graph the editor saved goes with its run, so the images carry it as ComfyUI's own saves do
  const body = state.editor ? { prompt, extra_data: { extra_pnginfo: { workflow: state.editor } } } : prompt;
  const reply = state.definition ? await run.api.startWorkflow(taskId, state.definition, params)
    : await run.api.start(taskId, body);
  if (reply.status !== 202) { fail(run, describeError(reply.status, reply.data)); return; }
  setStatus(run, "queued");
  follow(run);
}

async function runBatch() {
  const size = Math.min(8, Math.max(1, Number($("batch").value) || 1));
  state.batch = [];
  $("runs-panel").hidden = false;
  updateOverall();
  await Promise.all(Array.from({ length: size }, (_, index) => startRun(index)));
}

// ---- history ----------------------------------------------------------------------------------------------

function renderHistory() {
  const entries = history();
  $("history-panel").hidden = !entries.length;
  $("history").replaceChildren(...entries.map((entry) => {
    const show = element("button", { type: "button", textContent: "Show images", hidden: entry.status !== "succeeded" });
    const images = element("div", { className: "images" });
    const when = new Date(entry.createdAt).toLocaleString();
    const line = element("li", { className: "run" },
      element("header", {}, element("time", { className: "muted", textContent: when }),
              element("span", { textContent: `${entry.workflow} · ${entry.label}` }),
              element("span", { className: "status", textContent: entry.status }), show), images);
    line.dataset.status = entry.status;
    show.addEventListener("click", async () => {
      show.disabled = true;
      const reply = await api.task(entry.taskId);
      // 404: the task expired, or it is another key's (the agent says the same of both)
      const said = (className, textContent) => element("span", { className, textContent });
      if (reply.status === 404) images.replaceChildren(said("muted", "not found"));
      else if (reply.ok) images.replaceChildren(...imagesOf(reply.data));
      else images.replaceChildren(said("error", describeError(reply.status, reply.data)));
    });
    return line;
  }));
}

function renderGallery() {
  const figures = state.shown ? state.galleries.get(state.key) || [] : [];
  $("gallery").replaceChildren(...figures);
  $("gallery-panel").hidden = !figures.length;
}

// ---- signing in -------------------------------------------------------------------------------------------

async function slotOf(key) {
  return key ? `${HISTORY_KEY}.${await fingerprint(key)}` : ANONYMOUS;
}

// The page before keys kept one list, made with the token stored then: it becomes that token's slot, once.
async function migrateHistory() {
  const before = localStorage.getItem(HISTORY_KEY);
  if (before === null) return;
  const slot = await slotOf(localStorage.getItem(TOKEN_KEY) || "");
  if (localStorage.getItem(slot) === null) localStorage.setItem(slot, before);
  localStorage.removeItem(HISTORY_KEY);
}

// `refused`: said in the error colour.
function showWho(text, refused = false) {
  $("who").textContent = text;
  $("who").hidden = !text;
  $("who").classList.toggle("error", refused);
}

function describeIdentity(me) {
  const scopes = me.admin ? "every scope" : (me.scopes || []).join(", ") || "no scope";
  return `signed in as ${me.name} · ${scopes}`;
}

// Who the agent takes the key for (GET /api/me): then that key's history and gallery, none for a key it refuses.
// The runs on show are the previous key's: they go on, out of sight, and end in that key's history.
async function signIn(key) {
  const turn = ++state.signIns;  // a later sign-in wins over an answer still on its way
  state.key = key;
  state.shown = null;
  state.batch = [];
  $("runs").replaceChildren();
  $("runs-panel").hidden = true;
  updateOverall();
  $("sign-out").hidden = !key;
  showWho(key ? "checking the key…" : "");
  renderHistory();
  renderGallery();
  const [reply, slot] = await Promise.all([api.me().catch(() => ({ status: 0 })), slotOf(key)]);
  if (turn !== state.signIns) return;
  if (reply.status === 401) {  // signed out of an agent that asks for a key shows nobody's runs
    const why = typeof reply.data?.error === "string" ? `: ${reply.data.error}` : ".";  // unknown, revoked…
    showWho(key ? `This key was refused${why}` : "", true);
    return;
  }
  // An agent with no token answers for anyone (as admin): a key typed there changes nothing but the history slot.
  if (reply.ok) showWho(key ? describeIdentity(reply.data) : "");
  else showWho(key ? `The key could not be checked: ${describeError(reply.status, reply.data)}` : "", Boolean(key));
  state.shown = slot;
  renderHistory();
  renderGallery();
}

// A new key in the field (or none): stored for the next visit, and everything that depends on it asked again.
async function useKey(key) {
  $("token").value = key;
  state.key = key;  // before anything is asked with it
  if (key) localStorage.setItem(TOKEN_KEY, key);
  else localStorage.removeItem(TOKEN_KEY);
  watchReadiness();
  await Promise.all([signIn(key), loadExamples()]);  // the published workflows are listed to the key's holders
  // An example shown as its bare graph for want of the key: now as the workflow, with its model lists.
  if ($("examples").value && !state.definition) await useDefinition($("examples").value);
}

// ---- start ------------------------------------------------------------------------------------------------

async function watchReadiness() {
  clearTimeout(state.readinessTimer);
  const reply = await api.readiness().catch(() => ({ status: 0 }));
  const pill = $("readiness");
  // /readyz says why it takes no work now: ComfyUI starting, the instance stopping, or every place taken.
  const why = { full: "agent busy", stopping: "agent stopping", starting: "ComfyUI starting" }[reply.data?.status];
  pill.dataset.state = reply.status === 200 ? "ready" : "down";
  pill.textContent = reply.status === 200 ? "ComfyUI ready" : reply.status === 401 ? "token needed"
    : why || "ComfyUI not ready";
  state.readinessTimer = setTimeout(watchReadiness, 5000);
}

function wire() {
  $("token").addEventListener("change", () => useKey($("token").value.trim()));
  $("token-form").addEventListener("submit", (event) => event.preventDefault());  // Enter: the change above
  $("sign-out").addEventListener("click", () => useKey(""));
  $("examples").addEventListener("change", async () => {
    $("publish-panel").hidden = true;
    if ($("examples").value) await useDefinition($("examples").value);
  });
  $("file").addEventListener("change", async () => {
    const file = $("file").files[0];
    if (file) await openFile(file);
  });
  $("workflow-panel").addEventListener("dragover", (event) => event.preventDefault());
  $("workflow-panel").addEventListener("drop", async (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) await openFile(file);
  });
  $("publish").addEventListener("click", publish);
  $("paste-apply").addEventListener("click", async () => {
    await readJson($("paste").value, "pasted workflow");
    if (state.name === "pasted workflow") $("own").open = false;
  });
  $("run").addEventListener("click", runBatch);
  $("history-clear").addEventListener("click", () => {
    if (state.shown) localStorage.removeItem(state.shown);
    renderHistory();
  });
}

// `?workflow=NAME`: the link a creator hands out opens that workflow's form.
async function start() {
  wire();
  await migrateHistory();
  const key = localStorage.getItem(TOKEN_KEY) || "";
  $("token").value = key;
  state.key = key;
  watchReadiness();
  await Promise.all([signIn(key), loadExamples()]);
  const asked = new URLSearchParams(window.location.search).get("workflow");
  if (asked) {
    $("examples").value = asked;
    await useDefinition(asked);
  }
}

start();
