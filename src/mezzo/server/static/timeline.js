// What each event means in one line, and a run's status folded from its events.

const clip = (text, n = 160) => {
  const flat = String(text ?? "").replace(/\s+/g, " ");
  return flat.length > n ? `${flat.slice(0, n)}…` : flat;
};
const pct = (x) => `${Math.round(x * 100)}%`;

const SUMMARY = {
  run_queued: (d) => `queued (${d.priority}): ${clip(d.input, 100)}`,
  run_started: () => "started",
  model_call: (d) =>
    `step ${d.step} → route ${d.route} · ${d.provider}:${d.model} · reserved ${d.reserved_tokens} ` +
    `(est. in ${d.estimated_input_tokens}, max out ${d.max_output_tokens})`,
  model_result: (d) =>
    `step ${d.step} · ${d.model} · ${d.usage?.input_tokens ?? 0} in / ` +
    `${d.usage?.output_tokens ?? 0} out tokens · ${d.finish_reason}` +
    (d.tool_calls?.length ? ` · ${d.tool_calls.length} tool call(s)` : ""),
  message: (d) => `${d.role}: ${clip(d.content)}`,
  tool_call: (d) => `${d.name}(${clip(JSON.stringify(d.arguments), 100)}) · ${d.side} side`,
  tool_result: (d) => `${d.name} → ${d.is_error ? "ERROR " : ""}${clip(d.output)}`,
  yield: (d) => `asks: ${clip(d.question)}`,
  input: (d) => `answered: ${clip(d.text)}`,
  budget_alert: (d) => `${pct(d.threshold)} of the budget used (${d.used} / ${d.budget})`,
  budget_exhausted: (d) => `needs ${d.needed}, ${d.remaining} of ${d.budget} left`,
  suspended: (d) => `suspended: ${d.reason ?? ""}`,
  resumed: (d) => `resumed: ${d.reason ?? ""}`,
  throttled: (d) => `throttle rate ${d.rate}`,
  rate_limited: (d) => `waits ${Number(d.wait_s ?? 0).toFixed(2)} s for ${d.key ?? "the provider"}`,
  routed: (d) => `${d.from_route} → ${d.to_route} (${d.reason})`,
  retry: (d) => clip(Object.entries(d).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")),
  completed: (d) => `output: ${clip(d.output)}`,
  failed: (d) => `error: ${clip(d.error)}`,
  cancelled: (d) => `cancelled: ${clip(d.reason)}`,
  budget_added: (d) => `+${d.tokens} tokens → budget ${d.budget}`,
};

export function summary(event) {
  const describe = SUMMARY[event.type];
  return describe ? describe(event.data ?? {}) : clip(JSON.stringify(event.data));
}

const CATEGORY = {
  model_call: "model",
  model_result: "model",
  message: "model",
  tool_call: "tool",
  tool_result: "tool",
  yield: "human",
  input: "human",
  budget_alert: "warn",
  budget_exhausted: "bad",
  suspended: "warn",
  resumed: "good",
  throttled: "warn",
  rate_limited: "warn",
  routed: "warn",
  retry: "warn",
  completed: "good",
  failed: "bad",
  cancelled: "bad",
  budget_added: "good",
};

export const category = (type) => CATEGORY[type] ?? "plain";

const STATUS_AFTER = {
  run_queued: "queued",
  run_started: "running",
  model_call: "running",
  tool_result: "running",
  input: "running",
  yield: "awaiting_input",
  suspended: "suspended",
  resumed: "queued",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

// The status a run has after `event`, given the one it had before.
export function nextStatus(status, event) {
  if (TERMINAL.has(status)) return status;
  if (event.type === "tool_call") return event.data?.side === "client" ? "awaiting_tool" : status;
  return STATUS_AFTER[event.type] ?? status;
}
