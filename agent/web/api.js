// The agent's HTTP API, by relative paths only (the page may sit under any prefix, e.g. FC's URL).

export class AgentApi {
  constructor(tokenProvider) {
    this.token = tokenProvider;
  }

  async request(method, path, { body, headers = {} } = {}) {
    const token = this.token();
    const response = await fetch(path, {
      method,
      headers: { ...(body ? { "Content-Type": "application/json" } : {}),
                 ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    return { status: response.status, ok: response.ok, data };
  }

  // The same calls with another key: a run is followed with the key it was started with, whoever signs in meanwhile.
  as(token) { return new AgentApi(() => token); }

  readiness() { return this.request("GET", "../readyz"); }
  // Who the agent takes the key for: {name, scopes, admin, limits}; 401 for a key it does not know.
  me() { return this.request("GET", "../api/me"); }
  workflows() { return this.request("GET", "workflows/"); }
  workflow(name) { return this.request("GET", `workflows/${encodeURIComponent(name)}`); }
  definition(name) { return this.request("GET", `../api/workflows/${encodeURIComponent(name)}`); }
  startWorkflow(taskId, name, params) {
    return this.request("POST", `../api/workflows/${encodeURIComponent(name)}/run`,
                        { body: { params }, headers: { Prefer: "respond-async", "task-id": taskId } });
  }
  // What publishing would keep, with the parameters found (nothing stored); then publishing it.
  propose(definition) { return this.request("POST", "../api/workflows?dry_run=true", { body: definition }); }
  publish(definition) { return this.request("POST", "../api/workflows", { body: definition }); }
  objectInfo(nodeClass) { return this.request("GET", `../object_info/${encodeURIComponent(nodeClass)}`); }
  start(taskId, prompt) {
    return this.request("POST", "../api/run", { body: prompt, headers: { Prefer: "respond-async", "task-id": taskId } });
  }
  // The images' base64 comes with the task once it has finished (never while it runs), so one poll ends a run.
  task(taskId) { return this.request("GET", `../api/tasks/${encodeURIComponent(taskId)}?results=true`); }
  cancel(taskId) { return this.request("POST", `../api/tasks/${encodeURIComponent(taskId)}/cancel`); }
}

// An error body of the agent, in words a person can act on.
export function describeError(status, data) {
  if (status === 401) return "The agent asks for an API key (or its token): enter it at the top right.";
  if (!data || typeof data !== "object") return `The agent answered ${status}.`;
  const where = data.node_id ? `node ${data.node_id}${data.node_type ? ` (${data.node_type})` : ""}: ` : "";
  if (data.message === "PromptValidationError") {
    // the agent's `error.message` already names each node and its problem
    const said = data.error && (data.error.message || data.error);
    return `ComfyUI refused the workflow: ${typeof said === "string" ? said : JSON.stringify(said)}`;
  }
  if (data.message === "ExecutionError") {
    return `Failed at ${where}${data.exception_type || "error"}: ${(data.exception_message || data.error || "").trim()}`;
  }
  return `${data.message || "Error"}: ${where}${typeof data.error === "string" ? data.error : JSON.stringify(data.error)}`;
}
