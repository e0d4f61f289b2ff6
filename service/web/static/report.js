// The live Callbacks Scheduled Details report: the form's period and filters (kept in the page's
// address, with the CSV export's parameter names), the report's header and rows from /graphql,
// and status changes from the callbackStatusChanged subscription applied to the rows on screen.
import { authorizationHeaders, rememberApiKey } from "./session-key.js";

// The page's GraphQL documents live in static/documents, one file each, and are sent exactly as
// the files hold them: a service in allow-list mode (POMREPORT_TRUSTED_DOCUMENTS) runs only the
// documents of its manifest, which pomreport builds from these files and ships.
async function documentText(name) {
  const response = await fetch(new URL(`./documents/${name}.graphql`, import.meta.url));
  if (!response.ok) throw new Error(`cannot load ${name}.graphql: HTTP ${response.status}`);
  return response.text();
}

const [REPORT_QUERY, CSV_LINK_QUERY, STATUS_COUNTS_QUERY, CHANGES_SUBSCRIPTION] = await Promise.all(
  ["ReportPage", "ReportPageCsvLink", "ReportPageStatusCounts", "ReportPageChanges"].map(documentText),
);

const STATUSES = ["ACTIVE", "COMPLETED", "EXPIRED", "CAMPAIGN_TERMINATED", "OVERWRITTEN", "CONTACT_EXCLUDED"];

const LABELS = {
  AGENT: "Agent", CAMPAIGN: "Campaign", STANDARD: "Standard", STRICT_AGENT: "Strict agent",
  ACTIVE: "Active", COMPLETED: "Completed", EXPIRED: "Expired",
  CAMPAIGN_TERMINATED: "Campaign Terminated", OVERWRITTEN: "Overwritten",
  CONTACT_EXCLUDED: "Contact Excluded", RESTRICTED_DNC: "Restricted DNC",
  RESTRICTED_OTHER: "Restricted Other", CALLBACK_EXPIRED: "Callback Expired",
  CALLBACK_POSTPONED: "Callback Postponed",
};

// Section 1's columns, in POM's order, with its labels.
const COLUMNS = [
  ["Campaign Name", "campaignDisplayName"],
  ["Job ID", "jobId"],
  ["Creator Agent ID", "creatorAgentId"],
  ["Callback ID", "callbackId"],
  ["Callback Type", "callbackType", "label"],
  ["Created For Campaign/Agent", "createdFor"],
  ["Contact ID", "contactId"],
  ["Creation Time", "creationTime", "time"],
  ["Scheduled Start Time", "scheduledStartTime", "time"],
  ["Scheduled End Time", "scheduledEndTime", "time"],
  ["Callback Status", "callbackStatus", "label"],
  ["Serviced By Agent ID", "servicedByAgentId"],
  ["Interaction Attempt Time", "interactionAttemptTime", "time"],
  ["Custom Completion Code", "customCompletionCode"],
  ["System Completion Code", "systemCompletionCode", "label"],
];

const LIST_PARAMETERS = ["campaignName", "jobId", "callbackType", "callbackStatus"];
const TEXT_PARAMETERS = ["agentId", "contactId", "servicedByAgentId"];
const $ = (selector) => document.querySelector(selector);
const form = $("#report-form");

let report = null; // the report on screen
let pageNumber = 0; // which page of it, from 0
let paging = null; // the first/after or last/before that loaded it (null: the first page)
let loads = 0; // report requests sent, so that only the latest one's answer is shown
let newCallbacks = 0;
let live = null;
let watchedFilter = null; // the subscription's filter, as JSON
let statusCounts = null; // the chart's counts by status (a Map), kept live like the rows
let countLoads = 0; // chart requests sent, so that only the latest one's answer is shown

// ---- The form and the page's address ----

function showPeriodFields() {
  const mode = form.elements.mode.value;
  for (const label of form.querySelectorAll("label[data-mode]")) {
    label.hidden = label.dataset.mode !== mode;
  }
}

function listValue(name) {
  const field = form.elements[name];
  if (field instanceof HTMLSelectElement) {
    return [...field.selectedOptions].map((option) => option.value);
  }
  return field.value.split(",").map((part) => part.trim()).filter(Boolean);
}

// The view as URL parameters: the CSV export's names (SPEC 6), plus the page size.
function viewFromForm() {
  const view = new URLSearchParams();
  const mode = form.elements.mode.value;
  if (mode === "between") {
    view.set("from", form.elements.from.value);
    view.set("to", form.elements.to.value);
  } else {
    view.set(mode, form.elements[mode].value);
  }
  if (form.elements.timeZone.value.trim()) view.set("timeZone", form.elements.timeZone.value.trim());
  for (const name of TEXT_PARAMETERS) {
    if (form.elements[name].value.trim()) view.set(name, form.elements[name].value.trim());
  }
  for (const name of LIST_PARAMETERS) {
    for (const value of listValue(name)) view.append(name, value);
  }
  view.set("pageSize", form.elements.pageSize.value);
  return view;
}

function formFromView(view) {
  const mode = ["preset", "lastHours", "from"].find((name) => view.has(name)) ?? "lastDays";
  form.elements.mode.value = mode === "from" ? "between" : mode;
  for (const name of ["lastDays", "lastHours", "preset", "from", "to", "timeZone", ...TEXT_PARAMETERS]) {
    if (view.has(name)) form.elements[name].value = view.get(name);
  }
  for (const name of LIST_PARAMETERS) {
    const values = view.getAll(name);
    const field = form.elements[name];
    if (field instanceof HTMLSelectElement) {
      for (const option of field.options) option.selected = values.includes(option.value);
    } else {
      field.value = values.join(", ");
    }
  }
  if (view.has("pageSize")) form.elements.pageSize.value = view.get("pageSize");
  showPeriodFields();
}

function variablesFromView(view) {
  const timePeriod = {};
  if (view.has("preset")) timePeriod.preset = view.get("preset");
  if (view.has("lastDays")) timePeriod.lastDays = Number(view.get("lastDays"));
  if (view.has("lastHours")) timePeriod.lastHours = Number(view.get("lastHours"));
  if (view.has("from")) timePeriod.from = view.get("from");
  if (view.has("to")) timePeriod.to = view.get("to");
  if (view.has("timeZone")) timePeriod.timeZone = view.get("timeZone");
  const filters = {};
  for (const name of TEXT_PARAMETERS) if (view.has(name)) filters[name] = view.get(name);
  const lists = { campaignName: "campaignNames", jobId: "jobIds", callbackType: "callbackTypes",
                  callbackStatus: "callbackStatuses" };
  for (const [parameter, field] of Object.entries(lists)) {
    const values = view.getAll(parameter);
    if (values.length) filters[field] = parameter === "jobId" ? values.map(Number) : values;
  }
  return { timePeriod, filters };
}

// ---- Talking to /graphql ----

class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.codes = errors.map((error) => error.extensions?.code);
  }
}

async function graphql(query, variables) {
  const response = await fetch("graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json",
               Accept: "application/graphql-response+json, application/json",
               ...authorizationHeaders() },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

// ---- Rendering ----

const timeFormats = new Map(); // one formatter per zone: making one costs 0.2 ms, a table has 2,000 times

function timeText(value, timeZone) {
  if (!value) return "";
  if (!timeFormats.has(timeZone)) {
    // sv-SE writes 2026-11-20 09:15:00: unambiguous, sortable, and what POM's report shows.
    timeFormats.set(timeZone, new Intl.DateTimeFormat("sv-SE", {
      timeZone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }));
  }
  return timeFormats.get(timeZone).format(new Date(value));
}

function cellText(callback, [, field, kind]) {
  const value = callback[field];
  if (value === null || value === undefined) return "";
  if (kind === "time") return timeText(value, report.timePeriod.timeZone);
  if (kind === "label") return LABELS[value] ?? value;
  return String(value);
}

function rowElement(callback) {
  const row = document.createElement("tr");
  row.dataset.callbackId = callback.callbackId;
  for (const column of COLUMNS) {
    const cell = document.createElement("td");
    cell.dataset.column = column[1];
    cell.textContent = cellText(callback, column);
    row.append(cell);
  }
  return row;
}

function renderReport() {
  const { timePeriod, queryTime, filters, totalRecords, rows } = report;
  $("#time-period").textContent = timePeriod.label;
  $("#query-time").textContent = `${timeText(queryTime, timePeriod.timeZone)} (${timePeriod.timeZone})`;
  $("#applied-filters").textContent = filters.length
    ? filters.map(({ name, value }) => `${name}: ${value}`).join("; ")
    : "None";
  $("#total-records").textContent = totalRecords.toLocaleString("en");
  $("#csv-link").hidden = false;
  const body = $("#rows tbody");
  body.replaceChildren(...rows.edges.map((edge) => rowElement(edge.node)));
  if (!rows.edges.length) {
    const cell = document.createElement("td");
    cell.colSpan = COLUMNS.length;
    cell.className = "empty";
    cell.textContent = "No callbacks were scheduled in this period.";
    body.append(document.createElement("tr"));
    body.lastChild.append(cell);
  }
  const first = pageNumber * pageSize() + 1;
  $("#page-position").textContent = rows.edges.length
    ? `Rows ${first.toLocaleString("en")}–${(first + rows.edges.length - 1).toLocaleString("en")}` +
      ` of ${totalRecords.toLocaleString("en")}`
    : "No rows";
  enablePager();
}

function renderStatusChart() {
  const chart = $("#status-chart");
  chart.hidden = !statusCounts;
  if (!statusCounts) return;
  const largest = Math.max(1, ...statusCounts.values());
  chart.querySelector("ol").replaceChildren(...STATUSES.map((status) => {
    const count = statusCounts.get(status) ?? 0;
    const item = document.createElement("li");
    item.dataset.status = status;
    const label = document.createElement("span");
    label.textContent = LABELS[status];
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(100 * count) / largest}%`;
    const number = document.createElement("span");
    number.className = "count";
    number.textContent = count.toLocaleString("en");
    item.append(label, bar, number);
    return item;
  }));
}

// The chart's counts for the view in the page's address; the latest request's answer only.
async function loadStatusCounts(variables) {
  const sent = ++countLoads;
  try {
    const data = await graphql(STATUS_COUNTS_QUERY, variables);
    if (sent !== countLoads) return;
    statusCounts = new Map(data.callbacksScheduledSummary.groups.map((group) => [group.callbackStatus, group.count]));
  } catch {
    if (sent !== countLoads) return;
    statusCounts = null; // the report's own request shows why
  }
  renderStatusChart();
}

function enablePager() {
  $("#first-page").disabled = !report || pageNumber === 0;
  $("#previous-page").disabled = !report || pageNumber === 0;
  // Counted rather than read from pageInfo: a page reached backwards (last/before) need not
  // know whether one follows it (Relay's hasNextPage).
  const shown = pageNumber * pageSize() + (report?.rows.edges.length ?? 0);
  $("#next-page").disabled = !report || shown >= report.totalRecords;
}

// After a failed run, nothing of the report before it stays on screen as if it answered the
// new view (and its cursors cannot page through the new one).
function clearReport() {
  report = null;
  for (const field of ["#time-period", "#query-time", "#applied-filters", "#total-records"]) {
    $(field).textContent = "…";
  }
  $("#csv-link").hidden = true;
  $("#rows tbody").replaceChildren();
  $("#page-position").textContent = "";
  statusCounts = null;
  countLoads += 1; // an answer still on its way is for a view that did not run
  renderStatusChart();
  enablePager();
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

// ---- Loading a page of the report ----

// Load page `toPage` of the report in the page's address: `pagingTo` is first/after or
// last/before, or null for the first page (and a fresh look for new callbacks). Only the latest
// request's answer is shown; the pager waits for it.
async function load(pagingTo, toPage = 0, reloading = false) {
  const view = new URLSearchParams(window.location.search);
  const variables = { ...variablesFromView(view), ...(pagingTo ?? { first: pageSize() }) };
  const sent = ++loads;
  for (const button of document.querySelectorAll(".pager button")) button.disabled = true;
  // A fresh look (a run, or a reload after live updates were missed) counts again; paging does not.
  if (!pagingTo || reloading) loadStatusCounts(variablesFromView(view));
  try {
    const data = await graphql(REPORT_QUERY, variables);
    if (sent !== loads) return;
    report = data.callbacksScheduledDetails;
    [paging, pageNumber] = [pagingTo, toPage];
    showError("");
    showKeyPrompt(false);
    renderReport();
    if (!pagingTo) {
      newCallbacks = 0;
      $("#new-callbacks").hidden = true;
    }
    watch(variables.filters);
  } catch (error) {
    if (sent !== loads) return;
    clearReport();
    if (error.codes?.includes("UNAUTHENTICATED")) showKeyPrompt(true);
    showError(error.message);
  }
}

function showKeyPrompt(shown) {
  $("#key-needed").hidden = !shown;
  if (shown) $("#key-form input").focus();
}

function run(event) {
  event?.preventDefault();
  const problem = formProblem();
  if (problem) {
    showError(problem);
    return;
  }
  history.replaceState(null, "", `?${viewFromForm()}`);
  load(null);
}

// What the form holds that the report cannot take, said in the form's words.
function formProblem() {
  if (form.elements.mode.value === "between" && !(form.elements.from.value && form.elements.to.value)) {
    return "Between needs both From and To.";
  }
  if (listValue("jobId").some((value) => !/^\d+$/.test(value))) {
    return "Job IDs are whole numbers, separated by commas.";
  }
  return "";
}

// ---- Live updates ----

function inPeriod(callback) {
  const created = Date.parse(callback.creationTime);
  const { from, to } = report.timePeriod;
  // Last N hours ends at the query time: what is created later falls in the period it rolls to.
  const rolling = new URLSearchParams(window.location.search).has("lastHours");
  return (!from || created >= Date.parse(from)) && (!to || rolling || created < Date.parse(to));
}

function matchesFilters(callback) {
  const { filters } = variablesFromView(new URLSearchParams(window.location.search));
  const checks = [
    ["agentId", "creatorAgentId"], ["contactId", "contactId"],
    ["servicedByAgentId", "servicedByAgentId"],
  ];
  if (checks.some(([filter, field]) => filters[filter] && callback[field] !== filters[filter])) return false;
  const lists = [
    ["campaignNames", (c) => c.campaignName],
    ["jobIds", (c) => c.jobId], ["callbackTypes", (c) => c.callbackType],
    ["callbackStatuses", (c) => c.callbackStatus],
  ];
  return lists.every(([filter, value]) => !filters[filter] || filters[filter].includes(value(callback)));
}

// Whether the report counts `callback` when its status is `status`.
function counted(callback, status) {
  return inPeriod(callback) && matchesFilters({ ...callback, callbackStatus: status });
}

function countChange({ previousStatus, callback }) {
  if (!statusCounts) return;
  if (previousStatus !== null && counted(callback, previousStatus)) {
    statusCounts.set(previousStatus, Math.max(0, (statusCounts.get(previousStatus) ?? 0) - 1));
  }
  if (counted(callback, callback.callbackStatus)) {
    statusCounts.set(callback.callbackStatus, (statusCounts.get(callback.callbackStatus) ?? 0) + 1);
  }
  renderStatusChart();
}

function applyChange({ previousStatus, callback }) {
  if (!report) return;
  countChange({ previousStatus, callback });
  const row = document.querySelector(`#rows tr[data-callback-id="${CSS.escape(callback.callbackId)}"]`);
  if (row) {
    const updated = rowElement(callback);
    updated.classList.add("changed");
    row.replaceWith(updated);
  } else if (previousStatus === null && inPeriod(callback) && matchesFilters(callback)) {
    newCallbacks += 1;
    const note = $("#new-callbacks");
    note.querySelector("span").textContent =
      `${newCallbacks} new callback${newCallbacks === 1 ? "" : "s"} scheduled in this period since the report ran.`;
    note.hidden = false;
  }
}

function setLiveState(state, text) {
  const badge = $("#live");
  badge.dataset.state = state;
  badge.textContent = text;
}

// A small graphql-transport-ws client: one subscription, reconnecting with a growing delay; after
// a reconnect the report reloads, since changes made meanwhile were not received.
class LiveChanges {
  constructor(variables) {
    this.variables = variables;
    this.retryDelay = 1000;
    this.stopped = false;
    this.connect(false);
  }

  connect(reconnecting) {
    const url = new URL("graphql", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, "graphql-transport-ws");
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: authorizationHeaders() }));
    };
    socket.onmessage = ({ data }) => {
      const message = JSON.parse(data);
      if (message.type === "connection_ack") {
        socket.send(JSON.stringify({ id: "changes", type: "subscribe",
                                     payload: { query: CHANGES_SUBSCRIPTION, variables: this.variables } }));
        setLiveState("on", "Live");
        this.retryDelay = 1000;
        if (reconnecting) load(paging, pageNumber, true); // what changed meanwhile was not received
      } else if (message.type === "next" && message.payload.data) {
        applyChange(message.payload.data.callbackStatusChanged);
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "next" || message.type === "error") {
        // The subscription ended with errors (a revoked key, a subscriber too slow, ...).
        const errors = message.type === "next" ? message.payload.errors : message.payload;
        this.stop(`Live updates off: ${errors.map((error) => error.message).join("; ")}`);
        if (errors.some((error) => error.extensions?.code === "UNAUTHENTICATED")) showKeyPrompt(true);
      } else if (message.type === "complete") {
        if (!this.stopped) this.stop("Live updates ended");
      }
    };
    socket.onclose = ({ code }) => {
      if (this.stopped) return;
      if (code === 4401 || code === 4403) {
        // The key was refused (revoked, or never valid): retrying cannot help, a new key can.
        this.stop("Live updates off: the API key was refused");
        showKeyPrompt(true);
        return;
      }
      setLiveState("reconnecting", "Reconnecting…");
      setTimeout(() => this.stopped || this.connect(true), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 30000);
    };
  }

  stop(reason = "Live updates off") {
    this.stopped = true;
    this.socket.close(1000);
    setLiveState("off", reason);
  }
}

// Subscribe to the changes the report's filters could show (the subscription's filter is
// narrower in what it offers; the rest is checked on arrival); a reload with the same filters
// keeps the subscription.
function watch(filters) {
  const filter = {};
  if (filters.agentId) filter.creatorAgentId = filters.agentId;
  if (filters.contactId) filter.contactId = filters.contactId;
  if (filters.campaignNames) filter.campaignNames = filters.campaignNames;
  if (live && !live.stopped && JSON.stringify(filter) === watchedFilter) return;
  live?.stop();
  watchedFilter = JSON.stringify(filter);
  live = new LiveChanges({ filter });
}

// ---- Wiring ----

function fillTimeZones() {
  const zones = Intl.supportedValuesOf?.("timeZone") ?? [];
  $("#time-zones").replaceChildren(...zones.map((zone) => new Option("", zone)));
}

function headerRow() {
  $("#rows thead tr").replaceChildren(...COLUMNS.map(([label]) => {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = label;
    return cell;
  }));
}

form.elements.mode.addEventListener("change", showPeriodFields);
form.addEventListener("submit", run);
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  rememberApiKey(event.target.elements.apiKey.value);
  event.target.reset();
  live?.stop(); // its connection was authenticated with the old key, if any
  load(paging, pageNumber, true);
});
$("#new-callbacks button").addEventListener("click", () => run());
$("#first-page").addEventListener("click", () => load({ first: pageSize() }, 0));
$("#next-page").addEventListener("click", () => {
  load({ first: pageSize(), after: report.rows.pageInfo.endCursor }, pageNumber + 1);
});
$("#previous-page").addEventListener("click", () => {
  load({ last: pageSize(), before: report.rows.pageInfo.startCursor }, pageNumber - 1);
});
// The CSV link's token is valid for minutes; a page stays open for hours: sign a fresh one.
$("#csv-link").addEventListener("click", async (event) => {
  event.preventDefault();
  try {
    const { timePeriod, filters } = variablesFromView(new URLSearchParams(window.location.search));
    const data = await graphql(CSV_LINK_QUERY, { timePeriod, filters });
    window.location.assign(data.callbacksScheduledDetails.csvUrl);
  } catch (error) {
    showError(error.message);
  }
});

const PAGE_SIZES = [25, 50, 100, 500];

function pageSize() {
  const size = Number(new URLSearchParams(window.location.search).get("pageSize"));
  return PAGE_SIZES.includes(size) ? size : 50;
}

headerRow();
fillTimeZones();
formFromView(new URLSearchParams(window.location.search));
history.replaceState(null, "", `?${viewFromForm()}`);
load(null);
