// Which inputs of an API-format workflow a person edits: guessed from well-known nodes, or described by the
// workflow itself in a node's "_meta": {"panel": {"<input>": {title, type, min, max, step, options, hidden}}}.

const SEED = { type: "seed", title: "Seed (−1: random)" };
const STEPS = { type: "int", title: "Steps", min: 1, max: 200, step: 1 };
const CFG = { type: "float", title: "CFG", min: 0, max: 30, step: 0.1 };
const SAMPLER = { type: "choice", title: "Sampler", optionsFrom: ["KSampler", "sampler_name"] };
const SCHEDULER = { type: "choice", title: "Scheduler", optionsFrom: ["KSampler", "scheduler"] };
const DENOISE = { type: "float", title: "Denoise", min: 0, max: 1, step: 0.01 };
const SIDE = { type: "int", min: 64, max: 4096, step: 8 };
const PICTURE = { type: "image", title: "Image" };

export const GUESSES = {
  CLIPTextEncode: { text: { type: "text", title: "Text" } },
  KSampler: { seed: SEED, steps: STEPS, cfg: CFG, sampler_name: SAMPLER, scheduler: SCHEDULER, denoise: DENOISE },
  KSamplerAdvanced: { noise_seed: SEED, steps: STEPS, cfg: CFG, sampler_name: SAMPLER, scheduler: SCHEDULER },
  EmptyLatentImage: { width: { ...SIDE, title: "Width" }, height: { ...SIDE, title: "Height" },
                      batch_size: { type: "int", title: "Images per run", min: 1, max: 8, step: 1 } },
  LoadImage: { image: PICTURE },
  LoadImageMask: { image: PICTURE },
};

const isLink = (value) => Array.isArray(value) && value.length === 2 && typeof value[1] === "number";

function nodeTitle(id, node) {
  return (node._meta && node._meta.title) || `${node.class_type} #${id}`;
}

// The fields of a workflow, in node order: [{node, input, title, nodeTitle, type, min, max, step, options, value}].
export function discover(workflow) {
  const fields = [];
  for (const [node, spec] of Object.entries(workflow)) {
    if (!spec || typeof spec !== "object" || !spec.inputs) continue;
    const panel = (spec._meta && spec._meta.panel) || {};
    const guessed = GUESSES[spec.class_type] || {};
    const names = new Set([...Object.keys(guessed), ...Object.keys(panel)]);
    for (const input of names) {
      const value = spec.inputs[input];
      const described = { ...(guessed[input] || {}), ...(panel[input] || {}) };
      if (described.hidden || value === undefined || isLink(value)) continue;
      fields.push({ key: `${node}.${input}`, node, input, nodeTitle: nodeTitle(node, spec), title: described.title || input,
                    type: described.type || (typeof value === "number" ? "float" : "text"), ...described, value });
    }
  }
  return fields;
}

function randomSeed() {
  return Math.floor(Math.random() * 2 ** 48);
}

const WIDGETS = { string: "text", integer: "int", number: "float", boolean: "boolean", enum: "choice",
                  image: "image", seed: "seed" };

// The fields of a workflow the agent defines (GET /api/workflows/{name}): one per parameter of its JSON Schema,
// in one group (no node titles: the workflow's title says it all). An image's description is the API's (URLs,
// base64), not the page's: it offers a file picker.
export function fieldsOf(definition) {
  return Object.entries(definition.parameters.properties || {}).map(([name, schema]) => ({
    key: name, node: "", input: name, nodeTitle: "", title: schema.title || name,
    description: schema["x-type"] === "image" ? "" : schema.description || "",
    type: WIDGETS[schema["x-type"]] || "text", min: schema.minimum, max: schema.maximum,
    options: schema.enum, modelsFolder: schema["x-models-folder"],
    value: schema.default ?? (schema["x-type"] === "boolean" ? false : ""),
  }));
}

// The value a field sends in the index-th run of a batch: a seed of −1 is drawn for each run, a fixed seed
// counts up (seed, seed+1, ...) so that a batch gives different images, not the same one N times (cached).
export function valueFor(field, value, index) {
  if (field.type === "seed") return Number(value) === -1 ? randomSeed() : Number(value) + index;
  if (["int", "float"].includes(field.type)) return Number(value);
  if (field.type === "boolean") return value === true || value === "true";
  return value;
}

// One run's prompt: the workflow with the edited values; seeds as `valueFor` makes them.
export function promptFor(workflow, fields, values, index = 0) {
  const prompt = structuredClone(workflow);
  const seeds = {};
  for (const field of fields) {
    const value = valueFor(field, values.get(field.key), index);
    if (field.type === "seed") seeds[field.key] = value;
    prompt[field.node].inputs[field.input] = value;
  }
  return { prompt, seeds };
}
