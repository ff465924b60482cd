// The web UI's page: renders what the server sends, and sends the buttons.
//
// The server keeps the run (web_control.py) and formats every number; this
// script only draws. On load it asks for everything (/api/state), then
// listens to /api/events: a "snapshot" frame (everything, again: after a
// start, stop or reset, and whenever the stream reconnects) and a "tick"
// frame each second (the newest timeline row and the tables as they are).
// The replies of the buttons' POSTs are snapshots too.
//
// Those arrive by two ways that race (a POST's reply, the stream), so each
// view carries the server's epoch and sequence number, and `receive` shows
// a view only if it is not older than the one shown (web_control.py).
"use strict";

// Which of two views is newer: the page's one rule for frames in any order.
const TwincornOrder = {
  // True if `view` may be shown after `shown` (null: nothing shown yet).
  newer(shown, view) {
    if (shown === null || view.epoch !== shown.epoch) return true; // a new server process
    return view.seq >= shown.seq;
  },
};

(function () {
  const $ = (id) => document.getElementById(id);
  const ACTIVE = ["starting", "spawning", "running", "stopping"];
  const FIELDS = ["model", "users", "spawn_rate", "rate", "max_in_flight", "host", "run_time"];

  let shown = null; // {epoch, seq} of the newest view shown
  let runId = null;
  let formShown = false;
  let runError = "";
  let actionError = "";
  const charts = new TwincornCharts.ChartSet($("chart-area"));

  // -- rendering ---------------------------------------------------------

  function text(value, digits) {
    if (value === null || value === undefined) return "0";
    const x = Number(value);
    return x >= 100 || digits === 0 ? x.toFixed(0) : x.toFixed(digits);
  }

  function renderTable(id, table, emptyText) {
    const box = $(id);
    box.textContent = "";
    if (emptyText && table.rows.length === 0) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = emptyText;
      box.appendChild(p);
      return;
    }
    const kinds = table.columns.map((c) => c.kind);
    const cls = (kind) => (kind === "text" || kind === "message" ? kind : "num");
    const el = document.createElement("table");
    el.className = "stats";
    const head = el.createTHead().insertRow();
    table.columns.forEach((column, i) => {
      const th = document.createElement("th");
      th.className = cls(kinds[i]);
      th.textContent = column.title;
      head.appendChild(th);
    });
    const body = el.createTBody();
    for (const row of table.rows) {
      const tr = body.insertRow();
      if (row.total) tr.className = "total";
      row.cells.forEach((cell, i) => {
        const td = tr.insertCell();
        td.className = cls(kinds[i]) + (cell.bad ? " bad" : "");
        td.textContent = cell.text;
      });
    }
    box.appendChild(el);
  }

  function renderFigures(items) {
    const box = $("figures");
    box.textContent = "";
    for (const item of items) {
      const div = document.createElement("div");
      div.className = "figure" + (item.bad ? " bad" : "");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = item.label;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = item.value;
      div.append(label, value);
      box.appendChild(div);
    }
  }

  function renderHeader(view) {
    const state = view.state;
    document.body.dataset.state = state;
    $("status").textContent = state.toUpperCase();
    $("users").textContent = text(view.header.users, 0);
    $("rps").textContent = text(view.header.rps, 1);
    $("fail-percent").textContent = text(view.header.fail_percent, 1) + "%";
    const active = ACTIVE.includes(state);
    $("stop-button").disabled = !active || state === "stopping";
    $("reset-button").disabled = state === "ready" || (active && !view.can_reset);
    $("new-button").disabled = active;
    const failures = view.failures.rows.length + view.exceptions.rows.length;
    $("failure-count").textContent = failures ? String(failures) : "";
    runError = view.error;
    showMessage();
  }

  function renderTables(view) {
    renderFigures(view.figures);
    renderTable("stats-table", view.stats, "");
    renderTable("latency-table", view.latency, "");
    renderTable("failures-table", view.failures, "No failures.");
    renderTable("exceptions-table", view.exceptions, "");
    $("exceptions").hidden = view.exceptions.rows.length === 0;
    $("omission-note").textContent = view.omission;
    $("omission-note").hidden = !view.omission;
  }

  function fillForm(values) {
    const form = $("start-form");
    for (const name of ["users", "spawn_rate", "host", "run_time", "rate", "max_in_flight"]) {
      const field = form.elements.namedItem(name);
      if (field && values[name] !== null && values[name] !== undefined) {
        field.value = values[name];
      }
    }
    $("host").textContent = values.host || "";
    setModel(values.model);
  }

  function setModel(model) {
    const form = $("start-form");
    form.dataset.model = model;
    for (const radio of form.querySelectorAll("input[name=model]")) {
      radio.checked = radio.value === model;
    }
  }

  function showForm(show) {
    formShown = show;
    $("start-panel").hidden = !show;
    clearErrors();
    if (show) $("users-input").focus();
  }

  // -- the form's errors: the server's sentence beside the field it is about

  function fieldError(name) {
    return FIELDS.includes(name) ? $(name + "-error") : null;
  }

  function clearError(name) {
    const box = fieldError(name);
    if (box === null) return;
    box.hidden = true;
    box.textContent = "";
    const input = $("start-form").elements.namedItem(name);
    if (input instanceof HTMLInputElement) input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    FIELDS.forEach(clearError);
    $("form-error").hidden = true;
  }

  function showError(message, name) {
    const box = fieldError(name) || $("form-error");
    box.textContent = message;
    box.hidden = false;
    const input = name ? $("start-form").elements.namedItem(name) : null;
    if (input instanceof HTMLInputElement) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  // The banner: why the run failed, or why the last button did nothing.
  function showMessage() {
    const message = runError || actionError;
    $("banner").textContent = message;
    $("banner").hidden = !message;
  }

  // -- the server's frames -------------------------------------------------

  function applySnapshot(view) {
    runId = view.run;
    renderHeader(view);
    renderTables(view);
    charts.setRows(view.timeline);
    if (!formShown) fillForm(view.form);
    $("host").textContent = view.form.host || "";
    if (view.state === "ready" && !formShown) showForm(true);
    if (formShown && ACTIVE.includes(view.state)) showForm(false);
  }

  function applyTick(view) {
    if (view.run !== runId) return; // a snapshot of the new run is on its way
    renderHeader(view);
    renderTables(view);
    if (view.row && view.row.t !== undefined) charts.addRow(view.row);
  }

  // Every view comes through here: a stream's frames, /api/state, the
  // POSTs' replies. An older one than shown is dropped (a "ready" snapshot
  // sent before a start must not reopen the form); a tick needs the
  // snapshot of its epoch first. True if the view was shown.
  function receive(kind, view) {
    if (!TwincornOrder.newer(shown, view)) return false;
    if (kind === "tick" && (shown === null || shown.epoch !== view.epoch)) return false;
    shown = { epoch: view.epoch, seq: view.seq };
    if (kind === "tick") applyTick(view);
    else applySnapshot(view);
    return true;
  }

  function listen() {
    const events = new EventSource("/api/events");
    events.addEventListener("snapshot", (e) => receive("snapshot", JSON.parse(e.data)));
    events.addEventListener("tick", (e) => receive("tick", JSON.parse(e.data)));
  }

  async function load() {
    const response = await fetch("/api/state", { cache: "no-store" });
    receive("snapshot", await response.json());
    listen();
  }

  // -- the buttons -----------------------------------------------------------

  // POST, then show the new state it answers with; an error carries the
  // server's sentence and the form field it is about (`field`).
  async function post(path, body) {
    const response = await fetch(path, { method: "POST", body: body });
    const reply = await response.json();
    if (!response.ok) {
      const error = new Error(reply.error || response.statusText);
      error.field = reply.field || null;
      throw error;
    }
    receive("snapshot", reply);
    return reply;
  }

  function act(path) {
    post(path).then(
      () => {
        actionError = "";
        showMessage();
      },
      (error) => {
        actionError = error.message;
        showMessage();
      },
    );
  }

  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const body = new URLSearchParams(new FormData(form));
    clearErrors();
    $("start-button").disabled = true;
    post("/api/start", body)
      .then(
        () => showForm(false), // the reply was shown: STARTING or later
        (error) => showError(error.message, error.field),
      )
      .finally(() => {
        $("start-button").disabled = false;
      });
  });
  $("start-form").addEventListener("input", (event) => clearError(event.target.name));
  $("start-form").addEventListener("change", (event) => {
    if (event.target.name === "model") {
      setModel(event.target.value);
      clearErrors();
    }
  });
  $("stop-button").addEventListener("click", () => act("/api/stop"));
  $("reset-button").addEventListener("click", () => act("/api/reset"));
  $("new-button").addEventListener("click", () => showForm(true));
  $("cancel-button").addEventListener("click", () => showForm(false));

  for (const tab of document.querySelectorAll("nav.tabs button")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("nav.tabs button")) {
        other.classList.toggle("active", other === tab);
        $("tab-" + other.dataset.tab).hidden = other !== tab;
      }
      if (tab.dataset.tab === "charts") charts.resize();
    });
  }

  // For tests and the curious: the page's one entry for views.
  window.twincornWeb = { receive: receive };

  load().catch((error) => {
    actionError = "Could not load the state: " + error.message;
    showMessage();
  });
})();
