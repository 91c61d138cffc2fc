// The dashboard: workspaces, a run's live timeline, actions, and the system panel.

import { ApiError, apiKey, enc, get, post, Unauthorized, Unreachable } from "./api.js";
import { formatNumber, Sparkline } from "./charts.js";
import { EventStream } from "./stream.js";
import { category, nextStatus, summary, TERMINAL } from "./timeline.js";
import { VirtualList } from "./vlist.js";

const POLL_MS = 2000;
const TPM_WINDOW_MS = 60_000;
const MAX_METRIC_FEEDS = 32;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset ?? {});
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const shortRun = (run) => (run ? run.replace(/^run_/, "").slice(0, 8) : "—");
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour12: false });

const state = {
  workspaces: [],
  activeRuns: {},
  selected: null,
  workspace: null,
  stream: null,
  events: [],
  timeline: [],
  runs: new Map(),
  runOrder: [],
  selectedRun: null,
  runPinned: false,
  runView: null,
  live: new Map(),
  stepDone: new Set(),
  connectionLog: [],
  polling: null,
  metricFeeds: new Map(),
  callLabels: new Map(),
  tokenSamples: [],
};

// ---- messages and the API key

function banner(text, kind = "error") {
  const node = $("banner");
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = !text;
}

function clearBanner(kind) {
  if ($("banner").dataset.kind === kind) banner("");
}

function setConnection(stateName, detail = "") {
  const labels = {
    live: "live",
    connecting: "connecting…",
    reconnecting: "reconnecting…",
    offline: "offline",
  };
  const node = $("conn");
  if (node.dataset.state !== stateName) state.connectionLog.push(stateName);
  state.connectionLog.splice(0, state.connectionLog.length - 50);
  node.dataset.state = stateName;
  node.textContent = labels[stateName] ?? stateName;
  node.title = detail;
}

function askForKey(message) {
  stopEverything();
  $("key-message").textContent = message;
  $("key-input").value = "";
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

function handleError(error, context = "") {
  if (error instanceof Unauthorized) {
    const had = apiKey.get();
    askForKey(
      had
        ? `The server refused this API key (${error.message}). Enter a valid key.`
        : `This mezzo server needs an API key (${error.message}).`,
    );
    return;
  }
  if (error instanceof Unreachable) {
    banner("The mezzo server cannot be reached; retrying…", "connection");
    if (!state.stream) setConnection("offline", error.message);
    return;
  }
  const prefix = context ? `${context}: ` : "";
  banner(`${prefix}${error instanceof ApiError ? error.message : String(error)}`, "action");
}

async function act(context, operation) {
  try {
    const result = await operation();
    clearBanner("action");
    return result;
  } catch (error) {
    handleError(error, context);
    return null;
  }
}

// ---- workspaces

const workspaceList = new VirtualList($("ws-list"), {
  rowHeight: 64,
  render: (workspace) => {
    const active = state.activeRuns[workspace.id]?.length ?? 0;
    const row = el(
      "div",
      {
        className: `ws-row${workspace.id === state.selected ? " selected" : ""}`,
        dataset: { ws: workspace.id },
        onclick: () => {
          clearBanner("action");
          selectWorkspace(workspace.id);
        },
      },
      el("div", { className: "ws-name", textContent: workspace.id }),
      el("div", {
        className: "muted",
        textContent: `${active} active · throttle ${workspace.throttle_rate} · ${budgetText(workspace.budget)}`,
      }),
      gauge(workspace),
    );
    return row;
  },
});

function visibleWorkspaces() {
  const filter = $("ws-filter").value.trim().toLowerCase();
  return state.workspaces.filter((w) => !filter || w.id.toLowerCase().includes(filter));
}

function budgetText(budget) {
  const remaining = budget.budget_tokens - budget.committed - budget.reserved;
  return `${formatNumber(Math.max(0, remaining))} of ${formatNumber(budget.budget_tokens)} left`;
}

function gauge(workspace, big = false) {
  const { budget_tokens: total, committed, reserved } = workspace.budget;
  const share = (n) => `${Math.min(100, (n / Math.max(1, total)) * 100)}%`;
  const used = committed / Math.max(1, total);
  const thresholds = workspace.config.alert_thresholds ?? [];
  const crossed = thresholds.filter((t) => used >= t).length;
  const node = el(
    "div",
    {
      className: `gauge${big ? " big" : ""}`,
      title: `used ${committed} · reserved ${reserved} · budget ${total}`,
      dataset: { level: used >= 1 ? "exhausted" : crossed ? "alert" : "ok" },
    },
    el("span", { className: "used", style: `width:${share(committed)}` }),
    el("span", { className: "reserved", style: `width:${share(reserved)}` }),
  );
  for (const threshold of thresholds) {
    node.append(el("i", { className: "tick", style: `left:${threshold * 100}%`, title: `alert at ${threshold * 100}%` }));
  }
  return node;
}

function renderWorkspaces() {
  const items = visibleWorkspaces();
  $("ws-count").textContent = `(${state.workspaces.length})`;
  workspaceList.items = items;
  workspaceList.changed();
}

async function refresh() {
  try {
    const [workspaces, system] = await Promise.all([get("/v1/workspaces"), get("/v1/system")]);
    clearBanner("connection");
    if (!state.stream) setConnection("live");
    state.workspaces = workspaces.sort((a, b) => a.id.localeCompare(b.id));
    state.activeRuns = system.active_runs;
    renderWorkspaces();
    renderSystem(system);
    syncMetricFeeds();
    if (state.selected) {
      const view = workspaces.find((w) => w.id === state.selected);
      if (view) renderWorkspace(view);
      else workspaceVanished(state.selected);
    }
  } catch (error) {
    handleError(error);
  }
}

function workspaceVanished(id) {
  banner(`Workspace ${id} no longer exists (or is not visible with this key).`, "action");
  selectWorkspace(null);
}

function selectWorkspace(id) {
  state.stream?.close();
  state.stream = null;
  Object.assign(state, {
    selected: id,
    workspace: null,
    events: [],
    timeline: [],
    runs: new Map(),
    runOrder: [],
    selectedRun: null,
    runPinned: false,
    runView: null,
    live: new Map(),
    stepDone: new Set(),
  });
  $("no-ws").hidden = Boolean(id);
  $("ws-detail").hidden = !id;
  $("run-detail").hidden = true;
  $("event-detail").hidden = true;
  timelineList.setItems(state.timeline);
  runList.setItems(state.runOrder);
  renderWorkspaces();
  if (!id) return;
  location.hash = `#ws=${enc(id)}`;
  const view = state.workspaces.find((w) => w.id === id);
  if (view) renderWorkspace(view);
  state.stream = new EventStream(id, {
    onEvent: onEvent,
    onStatus: setConnection,
    onFatal: (code, reason) => {
      if (code === 4401) handleError(new Unauthorized(reason));
      else workspaceVanished(id);
    },
    onReset: () => selectWorkspace(id),
  }).start();
}

function renderWorkspace(view) {
  state.workspace = view;
  const { config, budget } = view;
  $("ws-title").textContent = view.id;
  $("ws-meta").textContent =
    `route ${config.route} · ${config.fallback_behavior} when out of budget · ${config.priority} priority`;
  $("ws-gauge").replaceWith(Object.assign(gauge(view, true), { id: "ws-gauge" }));
  const remaining = budget.budget_tokens - budget.committed - budget.reserved;
  $("ws-numbers").replaceChildren(
    ...[
      ["used", budget.committed],
      ["reserved", budget.reserved],
      ["remaining", remaining],
      ["budget", budget.budget_tokens],
      ["alerts at", (config.alert_thresholds ?? []).map((t) => `${Math.round(t * 100)}%`).join(", ") || "none"],
      ["throttle", view.throttle_rate],
      ["active runs", state.activeRuns[view.id]?.length ?? 0],
    ].map(([label, value]) =>
      el("span", { dataset: { field: label.replace(" ", "-") } }, el("b", { textContent: String(value) }), ` ${label}`),
    ),
  );
}

let workspaceRefresh = null;
function refreshWorkspaceSoon() {
  clearTimeout(workspaceRefresh);
  workspaceRefresh = setTimeout(async () => {
    if (!state.selected) return;
    const id = state.selected;
    try {
      const view = await get(`/v1/workspaces/${enc(id)}`);
      if (state.selected === id) renderWorkspace(view);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) workspaceVanished(id);
      else handleError(error);
    }
  }, 150);
}

// ---- events, runs and the timeline

const timelineList = new VirtualList($("timeline"), {
  rowHeight: 24,
  render: (event) =>
    el(
      "div",
      {
        className: `event ${category(event.type)}`,
        dataset: { seq: event.seq, type: event.type, run: event.run ?? "" },
        onclick: () => showEvent(event),
      },
      el("span", { className: "seq", textContent: `#${event.seq}` }),
      el("span", { className: "ts", textContent: clock(event.ts) }),
      el("span", { className: "type", textContent: event.type }),
      el("span", { className: "run-id", textContent: shortRun(event.run) }),
      el("span", { className: "text", textContent: summary(event) }),
    ),
});

const runList = new VirtualList($("run-list"), {
  rowHeight: 28,
  render: (id) => {
    const run = state.runs.get(id);
    return el(
      "div",
      {
        className: `run-row${id === state.selectedRun ? " selected" : ""}`,
        dataset: { run: id, status: run.status },
        onclick: () => selectRun(id, true),
      },
      el("span", { className: `status ${run.status}`, textContent: run.status }),
      el("span", { className: "run-id", textContent: shortRun(id) }),
      el("span", { className: "text", textContent: run.input }),
    );
  },
});

function showEvent(event) {
  const detail = $("event-detail");
  detail.hidden = false;
  detail.textContent = JSON.stringify(event, null, 2);
}

function inTimeline(event) {
  // Workspace-level events (throttle, top-ups) belong to every run's story.
  const runOnly = $("only-run").checked && state.selectedRun;
  return !runOnly || !event.run || event.run === state.selectedRun;
}

function onEvent(event) {
  if (event.type === "delta") {
    // Deltas are live-only and may overtake the model_call before them: a new step's text
    // starts with the first delta after the previous step's result.
    const fresh = state.stepDone.delete(event.run);
    const before = fresh ? "" : (state.live.get(event.run) ?? "");
    state.live.set(event.run, before + (event.data.text ?? ""));
    if (event.run === state.selectedRun) renderLiveText();
    return;
  }
  state.events.push(event);
  if (inTimeline(event)) {
    state.timeline.push(event);
    timelineList.changed();
  }
  $("event-count").textContent = `(${state.timeline.length} shown, ${state.events.length} in workspace)`;
  if (event.run) trackRun(event);
  if (event.run && event.run === state.selectedRun) refreshRunSoon();
  if (!event.run || /^(model_result|budget_|suspended|resumed|completed|failed|cancelled)/.test(event.type)) {
    refreshWorkspaceSoon();
  }
}

function trackRun(event) {
  let run = state.runs.get(event.run);
  if (!run) {
    run = { id: event.run, status: "queued", input: "" };
    state.runs.set(event.run, run);
    state.runOrder.unshift(event.run);
    $("run-count").textContent = `(${state.runOrder.length})`;
    if (!state.runPinned) followNewestRun();
  }
  if (event.type === "run_queued") run.input = event.data.input;
  if (event.type === "model_result") {
    state.stepDone.add(event.run);
    if (event.data.text) state.live.set(event.run, event.data.text);
  }
  if (event.run === state.selectedRun) renderLiveText();
  run.status = nextStatus(run.status, event);
  runList.changed();
}

// Until the reader picks a run, the newest one is shown (once per burst of events).
let following = null;
function followNewestRun() {
  clearTimeout(following);
  following = setTimeout(() => {
    const newest = state.runOrder[0];
    if (!state.runPinned && newest && newest !== state.selectedRun) selectRun(newest);
  }, 50);
}

function selectRun(id, pinned = false) {
  state.runPinned ||= pinned;
  state.selectedRun = id;
  state.runView = null;
  $("run-detail").hidden = !id;
  $("tool-forms").replaceChildren();
  state.timeline = state.events.filter(inTimeline);
  timelineList.setItems(state.timeline);
  $("event-count").textContent = `(${state.timeline.length} shown, ${state.events.length} in workspace)`;
  runList.changed();
  renderLiveText();
  refreshRunSoon();
}

function renderLiveText() {
  $("live-text").textContent = state.live.get(state.selectedRun) ?? "";
}

let runRefresh = null;
function refreshRunSoon() {
  clearTimeout(runRefresh);
  runRefresh = setTimeout(async () => {
    const id = state.selectedRun;
    if (!id) return;
    try {
      const view = await get(`/v1/runs/${enc(id)}`);
      if (state.selectedRun === id) renderRun(view);
    } catch (error) {
      handleError(error);
    }
  }, 100);
}

function renderRun(view) {
  state.runView = view;
  const known = state.runs.get(view.id);
  if (known) {
    known.status = view.status;
    runList.changed();
  }
  $("run-title").textContent = `Run ${shortRun(view.id)}`;
  $("run-title").title = view.id;
  const status = $("run-status");
  status.textContent = view.status;
  status.className = `status ${view.status}`;
  status.dataset.status = view.status;
  $("run-usage").textContent =
    `${view.steps} steps · ${view.usage.input_tokens} in / ${view.usage.output_tokens} out tokens` +
    ` · ${view.priority} priority${view.route ? ` · route ${view.route}` : ""}` +
    (view.error ? ` · error: ${view.error}` : "");
  $("cancel-run").disabled = TERMINAL.has(view.status);
  const asking = view.pending_input;
  $("answer-form").hidden = !asking;
  $("answer-form").dataset.call = asking?.call_id ?? "";
  $("answer-question").textContent = asking?.question ?? "";
  renderToolForms(view.pending_tool_calls);
}

function renderToolForms(calls) {
  const holder = $("tool-forms");
  const ids = calls.map((c) => c.call_id).join(",");
  if (holder.dataset.calls === ids) return;
  holder.dataset.calls = ids;
  holder.replaceChildren(
    ...calls.map((call) => {
      const output = el("textarea", { rows: 2, placeholder: "Result to send back", required: true });
      const isError = el("input", { type: "checkbox" });
      const form = el(
        "form",
        { className: "tool-form", dataset: { call: call.call_id } },
        el("p", {}, el("strong", { textContent: "Client tool call " }), `${call.name}(${JSON.stringify(call.arguments)})`),
        output,
        el("label", {}, isError, " is an error"),
        el("button", { type: "submit", textContent: "Send tool result" }),
      );
      form.onsubmit = (submit) => {
        submit.preventDefault();
        const run = state.selectedRun;
        act("tool result", () =>
          post(`/v1/runs/${enc(run)}/tool_results`, {
            results: [{ call_id: call.call_id, output: output.value, is_error: isError.checked }],
          }),
        ).then((view) => view && renderRun(view));
      };
      return form;
    }),
  );
}

// ---- actions

function wireActions() {
  $("budget-form").onsubmit = (submit) => {
    submit.preventDefault();
    const id = state.selected;
    act("add budget", () =>
      post(`/v1/workspaces/${enc(id)}/budget`, { add_tokens: Number($("budget-amount").value) }),
    ).then((view) => view && renderWorkspace(view));
  };
  $("throttle-form").onsubmit = (submit) => {
    submit.preventDefault();
    const id = state.selected;
    act("throttle", () =>
      post(`/v1/workspaces/${enc(id)}/throttle`, { rate: Number($("throttle-rate").value) }),
    ).then((view) => view && renderWorkspace(view));
  };
  $("submit-form").onsubmit = (submit) => {
    submit.preventDefault();
    const id = state.selected;
    const body = { input: $("submit-input").value };
    if ($("submit-priority").value) body.priority = $("submit-priority").value;
    act("submit run", () => post(`/v1/workspaces/${enc(id)}/runs`, body)).then((accepted) => {
      if (!accepted) return;
      $("submit-input").value = "";
      if (state.selected === id) selectRun(accepted.run, true);
    });
  };
  $("cancel-run").onclick = () => {
    const run = state.selectedRun;
    act("cancel", () => post(`/v1/runs/${enc(run)}/cancel`, { reason: "cancelled from the dashboard" }))
      .then((view) => view && renderRun(view));
  };
  $("answer-form").onsubmit = (submit) => {
    submit.preventDefault();
    const run = state.selectedRun;
    act("answer", () => post(`/v1/runs/${enc(run)}/input`, { text: $("answer-text").value })).then(
      (view) => {
        if (!view) return;
        $("answer-text").value = "";
        renderRun(view);
      },
    );
  };
  $("only-run").onchange = () => selectRun(state.selectedRun);
  $("ws-filter").oninput = renderWorkspaces;
  $("key-form").onsubmit = (submit) => {
    submit.preventDefault();
    apiKey.set($("key-input").value);
    $("key-dialog").close();
    start();
  };
  $("key-dialog").oncancel = (cancel) => cancel.preventDefault();
  $("forget-key").onclick = () => {
    apiKey.clear();
    askForKey("Enter an API key.");
  };
}

// ---- system panel

const queueChart = new Sparkline($("queue-chart"));
const tpmChart = new Sparkline($("tpm-chart"), { unit: "/min" });

const ADMIN_ONLY = "server-wide: shown to admin keys only";

function renderSystem(system) {
  if (system.queue_depth) {
    queueChart.push({ high: 0, normal: 0, low: 0, ...system.queue_depth });
    $("queue-numbers").replaceChildren(
      ...Object.entries({ high: 0, normal: 0, low: 0, ...system.queue_depth }).map(([name, n]) =>
        el("span", { dataset: { priority: name } }, el("b", { textContent: String(n) }), ` ${name}`),
      ),
    );
  } else {
    $("queue-numbers").replaceChildren(el("p", { className: "muted", textContent: ADMIN_ONLY }));
  }
  const workers = system.workers;
  $("workers").replaceChildren(
    !system.operator
      ? el("p", { className: "muted", textContent: ADMIN_ONLY })
      : workers
      ? el(
          "div",
          { className: "numbers" },
          ...[
            ["in flight", `${workers.in_flight}/${workers.concurrency}`],
            ["jobs leased", workers.leased],
            ["retried", workers.retried],
            ["dead", workers.dead],
          ].map(([label, value]) => el("span", {}, el("b", { textContent: String(value) }), ` ${label}`)),
        )
      : el("p", { className: "muted", textContent: "this server runs no workers (--no-workers)" }),
  );
  $("providers").replaceChildren(
    ...(system.providers.length
      ? system.providers.map((p) =>
          el(
            "div",
            { className: "provider", dataset: { breaker: p.breaker } },
            el("b", { textContent: p.key }),
            el("span", { className: `breaker ${p.breaker}`, textContent: ` breaker ${p.breaker}` }),
            el("div", {
              className: "muted",
              textContent:
                `rpm ${p.learned_rpm ?? p.rpm ?? "∞"} · tpm ${p.learned_tpm ?? p.tpm ?? "∞"}` +
                (p.learned_rpm || p.learned_tpm ? " (learned)" : "") +
                (p.retry_in_s > 0 ? ` · retry in ${p.retry_in_s.toFixed(1)} s` : ""),
            }),
          ),
        )
      : [el("p", { className: "muted", textContent: "no provider called yet" })]),
  );
  $("dead-letters").replaceChildren(
    ...(system.dead_letters.length
      ? system.dead_letters.map((dead) =>
          el(
            "div",
            { className: "dead", dataset: { job: dead.job } },
            el("div", {}, el("b", { textContent: shortRun(dead.run) }), ` in ${dead.workspace} · ${dead.attempts} attempts`),
            el("div", { className: "muted", textContent: dead.last_error ?? "" }),
            el("button", {
              type: "button",
              textContent: "Requeue",
              onclick: () => act("requeue", () => post(`/v1/system/dead/${enc(dead.job)}/requeue`)).then(refresh),
            }),
          ),
        )
      : [el("p", { className: "muted", textContent: "none" })]),
  );
  sampleTokensPerMinute();
}

// Tokens per minute by route: model_call/model_result of every visible workspace from now on.
function syncMetricFeeds() {
  const wanted = new Map(state.workspaces.slice(0, MAX_METRIC_FEEDS).map((w) => [w.id, w]));
  for (const [id, feed] of state.metricFeeds) {
    if (!wanted.has(id)) {
      feed.close();
      state.metricFeeds.delete(id);
    }
  }
  for (const [id, workspace] of wanted) {
    if (state.metricFeeds.has(id)) continue;
    const feed = new EventStream(id, {
      after: workspace.head_seq,
      types: ["model_call", "model_result"],
      onEvent: onMetricEvent,
      onFatal: () => state.metricFeeds.delete(id),
    });
    state.metricFeeds.set(id, feed.start());
  }
}

function onMetricEvent(event) {
  const step = `${event.run}:${event.data.step}`;
  if (event.type === "model_call") {
    state.callLabels.set(step, `${event.data.route} · ${event.data.provider}:${event.data.model}`);
    return;
  }
  const usage = event.data.usage ?? {};
  state.tokenSamples.push({
    at: Date.now(),
    label: state.callLabels.get(step) ?? event.data.model,
    tokens: (usage.input_tokens ?? 0) + (usage.output_tokens ?? 0),
  });
  state.callLabels.delete(step);
}

function sampleTokensPerMinute() {
  const since = Date.now() - TPM_WINDOW_MS;
  state.tokenSamples = state.tokenSamples.filter((s) => s.at >= since);
  const perRoute = {};
  for (const sample of state.tokenSamples) {
    perRoute[sample.label] = (perRoute[sample.label] ?? 0) + sample.tokens;
  }
  tpmChart.push(perRoute);
}

// ---- start and stop

function stopEverything() {
  clearInterval(state.polling);
  state.polling = null;
  state.stream?.close();
  state.stream = null;
  for (const feed of state.metricFeeds.values()) feed.close();
  state.metricFeeds.clear();
  setConnection("offline");
}

async function start() {
  stopEverything();
  $("forget-key").hidden = !apiKey.get();
  await refresh();
  if ($("key-dialog").open) return;
  state.polling = setInterval(refresh, POLL_MS);
  const wanted = decodeURIComponent(location.hash.match(/ws=([^&]+)/)?.[1] ?? "");
  const again = state.selected ?? (state.workspaces.some((w) => w.id === wanted) ? wanted : null);
  if (again) selectWorkspace(again);
}

wireActions();
start();

// For tests and for the curious: the page's state and a way to drop its socket.
window.mezzoDashboard = { state, dropSocket: () => state.stream?.drop() };
