// ferry console: plain ES module, no build step. It talks to the HTTP API
// (Authorization: Bearer <key>) and the WebSocket API (the key in the
// token query parameter, which browsers' WebSockets cannot send as a
// header), whose URLs config.json beside this file names.

const $ = (id) => document.getElementById(id);
const KEY = "ferry.key";
const FILTERS = "ferry.filters";

let config = null;

// ---- the HTTP API ---------------------------------------------------------

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(config.api + path, init);
  } catch (err) {
    throw new APIError(0, "unavailable", `the API at ${config.api} cannot be reached (${err.message})`);
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    // a body that is not JSON: described by the status below
  }
  if (!resp.ok) {
    const e = data?.error;
    const err = new APIError(resp.status, e?.code ?? String(resp.status), e?.message ?? data?.message ?? resp.statusText);
    if (resp.status === 401 || (resp.status === 403 && !e)) {
      signOut("Your key was refused; sign in again.");
    }
    throw err;
  }
  return data;
}

const describe = (err) => (err instanceof APIError ? `${err.code}: ${err.message}` : String(err));

function say(text) {
  $("notice").textContent = text;
}

// ---- signing in -------------------------------------------------------------

async function signIn(ev) {
  ev.preventDefault();
  const key = $("key").value.trim();
  $("signin-error").textContent = "";
  if (!key) {
    $("signin-error").textContent = "Enter an API key.";
    $("key").focus();
    return;
  }
  sessionStorage.setItem(KEY, key);
  try {
    // Any query proves the key: one that answers nothing needs no index scan.
    await api("GET", "/transfers?status=CANCELLED&limit=1");
  } catch (err) {
    sessionStorage.removeItem(KEY);
    $("signin-error").textContent = err.status === 401 || err.status === 403 ? "That key was refused." : describe(err);
    $("key").focus();
    return;
  }
  $("key").value = "";
  say("Signed in.");
  route();
}

function signOut(why) {
  sessionStorage.removeItem(KEY);
  live.close();
  current = null;
  say(why ?? "Signed out.");
  if (location.hash && location.hash !== "#/") {
    history.replaceState(null, "", "#/");
  }
  route();
}

// ---- routing: #/ is the history, #/transfers/ID a timeline ----------------

function show(section) {
  for (const id of ["signin", "history", "transfer"]) {
    $(id).hidden = id !== section;
  }
  $("signout").hidden = section === "signin";
}

function route() {
  if (!sessionStorage.getItem(KEY)) {
    show("signin");
    $("key").focus();
    return;
  }
  const m = location.hash.match(/^#\/transfers\/([0-9A-Z]{26})$/);
  if (m) {
    openTransfer(m[1]);
    return;
  }
  closeTransfer();
  show("history");
}

// ---- history ----------------------------------------------------------------

// cursors[i] is the cursor of page i (page 0's is "").
let cursors = [""];
let page = 0;

function filterQuery() {
  const form = $("filters");
  const q = new URLSearchParams();
  for (const name of ["status", "sender", "recipient", "route"]) {
    const v = form.elements[name].value.trim();
    if (v) q.set(name, v);
  }
  for (const name of ["since", "until"]) {
    const v = form.elements[name].value;
    if (v) q.set(name, new Date(v).toISOString().replace(/\.\d{3}Z$/, "Z"));
  }
  return q;
}

function saveFilters() {
  const form = $("filters");
  const saved = {};
  for (const el of form.elements) {
    if (el.name) saved[el.name] = el.value;
  }
  sessionStorage.setItem(FILTERS, JSON.stringify(saved));
}

function restoreFilters() {
  const saved = JSON.parse(sessionStorage.getItem(FILTERS) ?? "{}");
  const form = $("filters");
  for (const [name, value] of Object.entries(saved)) {
    if (form.elements[name]) form.elements[name].value = value;
  }
}

async function search(ev) {
  ev?.preventDefault();
  saveFilters();
  cursors = [""];
  page = 0;
  await loadPage();
}

async function loadPage() {
  const q = filterQuery();
  if (![...q.keys()].some((k) => ["status", "sender", "recipient", "route"].includes(k))) {
    $("history-status").textContent = "Give a status, sender, recipient or route.";
    return;
  }
  q.set("limit", "25");
  if (cursors[page]) q.set("cursor", cursors[page]);
  $("history-status").textContent = "Loading…";
  let data;
  try {
    data = await api("GET", `/transfers?${q}`);
  } catch (err) {
    $("history-status").textContent = describe(err);
    return;
  }
  const rows = $("history-rows");
  rows.replaceChildren(...data.items.map(historyRow));
  cursors.length = page + 1;
  if (data.cursor) cursors.push(data.cursor);
  $("prev-page").disabled = page === 0;
  $("next-page").disabled = !data.cursor;
  $("page-number").textContent = `Page ${page + 1}`;
  const n = data.items.length;
  $("history-status").textContent = n === 0 ? "No transfers match." : `${n} transfer${n === 1 ? "" : "s"} on page ${page + 1}.`;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function historyRow(t) {
  const tr = document.createElement("tr");
  tr.dataset.id = t.id;
  const link = document.createElement("a");
  link.href = `#/transfers/${t.id}`;
  link.textContent = t.id;
  const first = document.createElement("td");
  first.append(link);
  tr.append(first, cell(t.status, `status status-${t.status}`), cell(t.sender), cell(t.recipient), cell(t.route),
    cell(t.filename), cell(t.chunks ? `${t.chunksSent ?? 0}/${t.chunks}` : ""), cell(t.lastError), cell(when(t.updated)));
  return tr;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// ---- a transfer's timeline ------------------------------------------------------

// current is the transfer shown: its id, its events by seq, and live
// events that arrived while the page was loading them.
let current = null;

async function openTransfer(id) {
  if (current?.id === id) return;
  closeTransfer();
  current = { id, events: new Map(), loading: true, buffered: [], state: null };
  show("transfer");
  $("t-id").textContent = id;
  $("t-details").replaceChildren();
  $("timeline").replaceChildren();
  $("t-failure").hidden = true;
  setProgress(0, 0);
  $("transfer-h").focus();
  live.subscribe(id);
  const mine = current;
  for (let tries = 0; ; tries++) {
    try {
      mine.state = await api("GET", `/transfers/${id}`);
      break;
    } catch (err) {
      if (current !== mine) return;
      // A file just uploaded becomes a transfer a moment later.
      if (err.status === 404 && tries < 150) {
        $("t-live").textContent = "Waiting for the transfer to appear…";
        await sleep(200);
        continue;
      }
      $("t-live").textContent = describe(err);
      return;
    }
  }
  if (current !== mine) return;
  live.subscribe(id); // again, now that it exists, in case the first was too early
  renderDetails(mine.state);
  await fetchEvents(mine, 0, false);
  if (current !== mine) return;
  mine.loading = false;
  for (const ev of mine.buffered) applyEvent(ev, true);
  mine.buffered = [];
  $("t-live").textContent = live.connected() ? "Live: updates as they happen." : "Connecting to live updates…";
}

function closeTransfer() {
  if (current) live.unsubscribe(current.id);
  current = null;
}

// fetchEvents reads the events after seq from the API, every page, and
// applies those not seen yet.
async function fetchEvents(t, after, arrivedLive) {
  for (;;) {
    let data;
    try {
      data = await api("GET", `/transfers/${t.id}/events?after=${after}&limit=100`);
    } catch (err) {
      $("t-live").textContent = describe(err);
      return;
    }
    if (current !== t) return;
    for (const ev of data.items) applyEvent(ev, arrivedLive, true);
    if (data.next === undefined || data.next === null) return;
    after = data.next;
  }
}

function maxSeq(t) {
  let m = 0;
  for (const s of t.events.keys()) m = Math.max(m, s);
  return m;
}

// applyEvent adds an event to the timeline once, in seq order; a live
// event beyond a gap first has the events between fetched.
function applyEvent(ev, arrivedLive, fromFetch = false) {
  const t = current;
  if (!t || ev.transferId !== t.id || t.events.has(ev.seq)) return;
  if (t.loading && !fromFetch) {
    t.buffered.push(ev);
    return;
  }
  const last = maxSeq(t);
  if (!fromFetch && ev.seq > last + 1) {
    fetchEvents(t, last, true).then(() => applyEvent(ev, arrivedLive, true));
    return;
  }
  t.events.set(ev.seq, ev);
  const li = timelineItem(ev, arrivedLive);
  const after = [...$("timeline").children].find((el) => Number(el.dataset.seq) > ev.seq);
  $("timeline").insertBefore(li, after ?? null);
  if (ev.seq >= maxSeq(t)) renderState(ev);
}

function timelineItem(ev, arrivedLive) {
  const li = document.createElement("li");
  li.dataset.seq = ev.seq;
  li.dataset.type = ev.type;
  if (arrivedLive) li.dataset.live = "true";
  const time = document.createElement("time");
  time.dateTime = ev.occurredAt ?? "";
  time.textContent = when(ev.occurredAt);
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = ev.type;
  li.append(time, type, document.createTextNode(eventText(ev)));
  return li;
}

function eventText(ev) {
  switch (ev.type) {
    case "Requested": {
      const parts = [` — ${ev.filename ?? "a file"} (${ev.bytes ?? 0} bytes)`];
      if (ev.sender) parts.push(`from ${ev.sender}`);
      if (ev.recipient) parts.push(`to ${ev.recipient}`);
      if (ev.route) parts.push(`by route ${ev.route}`);
      return parts.join(" ");
    }
    case "ChunkSent":
      return ` — chunk ${ev.chunk} of ${ev.chunks}`;
    case "Delivered":
      return ev.location ? ` — to ${ev.location}` : "";
    case "Failed":
      return ` — ${failureText(ev.error)}`;
    case "Retried":
      return ` — attempt ${ev.attempt ?? "?"}`;
    case "Replayed":
    case "Cancelled":
      return ev.actor ? ` by ${ev.actor}` : "";
    default:
      return "";
  }
}

function failureText(e) {
  if (!e) return "no reason given";
  const code = e.code ? ` ${e.code}` : "";
  return `${e.kind}${code}: ${e.message}${e.retryable ? " (will be retried)" : " (for good)"}`;
}

function setProgress(sent, chunks) {
  const p = $("t-progress");
  p.max = Math.max(chunks, 1);
  p.value = sent;
  $("t-progress-text").textContent = chunks ? `${sent} of ${chunks}` : "not started";
}

function renderDetails(st) {
  const rows = [
    ["Status", st.status], ["Sender", st.sender], ["Recipient", st.recipient], ["Route", st.route],
    ["File", st.filename], ["Bytes", st.bytes], ["Created", when(st.created)],
  ];
  $("t-details").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v ?? "";
    if (k === "Status") dd.id = "t-status";
    return [dt, dd];
  }));
  setProgress(st.chunksSent ?? 0, st.chunks ?? 0);
  renderFailure(st.status, st.lastFailure);
}

// renderState shows the state after the latest event.
function renderState(ev) {
  if ($("t-status")) $("t-status").textContent = ev.status;
  if (ev.chunks !== undefined) setProgress(ev.chunksSent ?? 0, ev.chunks);
  renderFailure(ev.status, ev.type === "Failed" ? ev.error : current?.state?.lastFailure);
}

function renderFailure(status, failure) {
  const failed = status === "FAILED";
  $("t-failure").hidden = !failed;
  if (failed) $("t-reason").textContent = failureText(failure);
}

// ---- replay -------------------------------------------------------------------

function askReplay() {
  $("replay-reason").value = "";
  $("replay-error").textContent = "";
  $("replay-dialog").showModal();
  $("replay-reason").focus();
}

async function replay(ev) {
  ev.preventDefault();
  const reason = $("replay-reason").value.trim();
  if (!reason) {
    $("replay-error").textContent = "Say why: the reason is recorded with the replay.";
    $("replay-reason").focus();
    return;
  }
  const t = current;
  $("replay-submit").disabled = true;
  try {
    await api("POST", `/transfers/${t.id}/replay`, { reason });
  } catch (err) {
    $("replay-error").textContent = err.status === 403 ? "Only operators, or the transfer's parties, may replay it." : describe(err);
    return;
  } finally {
    $("replay-submit").disabled = false;
  }
  $("replay-dialog").close();
  say("Replay recorded.");
  $("replay").focus();
  // The Replayed event comes live too; read it now in case the socket is down.
  if (current === t) await fetchEvents(t, maxSeq(t), true);
}

// ---- live updates over the WebSocket ---------------------------------------------

const live = (() => {
  let ws = null;
  let open = false;
  let retry = 0;
  let timer = null;
  const wanted = new Set();

  function connect() {
    if (ws || !sessionStorage.getItem(KEY)) return;
    const url = `${config.live}/?token=${encodeURIComponent(sessionStorage.getItem(KEY))}`;
    ws = new WebSocket(url);
    ws.onopen = () => {
      open = true;
      retry = 0;
      for (const id of wanted) send({ action: "subscribe", transfer: id });
    };
    ws.onmessage = (msg) => {
      let f;
      try {
        f = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (f.type === "event" && f.event) {
        applyEvent(f.event, true);
      } else if (f.type === "subscribed" && current && f.topic === `transfer:${current.id}`) {
        $("t-live").textContent = "Live: updates as they happen.";
        // Anything recorded before the subscription took is read now.
        if (!current.loading && f.seq > maxSeq(current)) fetchEvents(current, maxSeq(current), true);
      } else if (f.type === "error" && current && f.code === "not_found") {
        // subscribed before the transfer existed: openTransfer subscribes again
      }
    };
    ws.onclose = () => {
      ws = null;
      open = false;
      if (!sessionStorage.getItem(KEY)) return;
      if (current) $("t-live").textContent = "Live updates lost; reconnecting…";
      const wait = Math.min(30000, 500 * 2 ** retry++);
      timer = setTimeout(() => {
        timer = null;
        connect();
        // What happened while the socket was down is read from the API.
        if (current && !current.loading) fetchEvents(current, maxSeq(current), true);
      }, wait);
    };
  }

  function send(frame) {
    if (open) ws.send(JSON.stringify(frame));
  }

  return {
    connected: () => open,
    subscribe(id) {
      wanted.add(id);
      if (open) send({ action: "subscribe", transfer: id });
      else connect();
    },
    unsubscribe(id) {
      wanted.delete(id);
      send({ action: "unsubscribe", transfer: id });
    },
    close() {
      wanted.clear();
      clearTimeout(timer);
      timer = null;
      if (ws) ws.close();
      ws = null;
      open = false;
    },
  };
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- start ----------------------------------------------------------------------

async function start() {
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    config = await resp.json();
  } catch (err) {
    say(`config.json could not be read: ${err.message}`);
    return;
  }
  config.api = config.api.replace(/\/$/, "");
  config.live = config.live.replace(/\/$/, "");
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut());
  $("filters").addEventListener("submit", search);
  $("prev-page").addEventListener("click", () => {
    page = Math.max(0, page - 1);
    loadPage();
  });
  $("next-page").addEventListener("click", () => {
    if (cursors[page + 1]) {
      page++;
      loadPage();
    }
  });
  $("replay").addEventListener("click", askReplay);
  $("replay-form").addEventListener("submit", replay);
  $("replay-cancel").addEventListener("click", () => $("replay-dialog").close());
  window.addEventListener("hashchange", route);
  restoreFilters();
  document.body.dataset.ready = "true";
  route();
}

start();
