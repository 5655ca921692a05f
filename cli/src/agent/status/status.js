// metergate serve: the status page. Everything shown comes from the ledger (seller input),
// so it is written with textContent only; nothing is ever parsed as HTML.
(function () {
  "use strict";

  var TOKEN_KEY = "metergate-token";
  var LIMIT = 50;
  var REFRESH_MS = 30000;
  var VIEWS = ["pending", "sent", "rejected", "failed", "expired"];
  var LABELS = { pending: "Pending", sent: "Sent", rejected: "Rejected", failed: "Failed", expired: "Expired" };
  var MARKETS = { aws: "AWS", azure: "Microsoft", gcp: "Google" };

  // skew: the agent's clock minus this browser's, so deadlines count down on the agent's time.
  var state = { offset: 0, customer: "", timer: null, seq: 0, skew: 0 };

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage off: the token lives until the page closes */ }
    memoryToken = t;
  }
  var memoryToken = "";

  function banner(text, error) {
    var b = $("banner");
    b.textContent = text || "";
    b.className = "banner" + (text ? (error ? " error" : "") : " ok");
  }

  // GET a JSON endpoint with the token (when there is one); a browser signed in with HTTP
  // Basic sends its own credentials.
  function getJSON(path, params, tok) {
    var qs = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k] !== "" && params[k] !== undefined) qs.set(k, params[k]); });
    var headers = { "Accept": "application/json" };
    var t = tok !== undefined ? tok : (token() || memoryToken);
    if (t) headers["Authorization"] = "Bearer " + t;
    return fetch(path + (qs.toString() ? "?" + qs.toString() : ""), { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { var e = new Error("unauthorized"); e.unauthorized = true; throw e; }
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
          return body;
        });
      });
  }

  function filters() {
    return {
      q: $("q").value.trim(),
      marketplace: $("marketplace").value,
      product: $("product").value,
      status: $("status").value,
      since: $("since").value.trim(),
      until: $("until").value.trim(),
      customer: state.customer
    };
  }

  function fmtTime(s) {
    if (!s) return "";
    return String(s).replace("T", " ").replace(/(:\d\d)(\.\d+)?Z$/, "$1Z");
  }

  function until(at) {
    var ms = Date.parse(at) - (Date.now() + state.skew);
    if (isNaN(ms)) return { text: at, cls: "" };
    var abs = Math.abs(ms), m = Math.round(abs / 60000), text;
    if (m < 60) text = m + " min"; else if (m < 48 * 60) text = Math.round(m / 6) / 10 + " h"; else text = Math.round(m / 144) / 10 + " d";
    if (ms < 0) return { text: text + " ago", cls: "deadline-passed" };
    return { text: "in " + text, cls: ms < 3600000 ? "deadline-soon" : "" };
  }

  function renderTotals(t) {
    var box = $("totals");
    box.replaceChildren();
    VIEWS.forEach(function (v) {
      var b = el("button", null, "stat " + v);
      b.type = "button";
      b.title = "Show only " + LABELS[v].toLowerCase() + " records";
      b.appendChild(el("span", (t && t[v]) || 0, "n"));
      b.appendChild(el("span", LABELS[v], "l"));
      b.addEventListener("click", function () { $("status").value = $("status").value === v ? "" : v; changed(); });
      box.appendChild(b);
    });
  }

  function renderProducts(list) {
    var sel = $("product"), keep = sel.value, m = $("marketplace").value;
    var seen = {};
    sel.replaceChildren(el("option", "All"));
    sel.firstChild.value = "";
    (list || []).forEach(function (p) {
      if (m && p.marketplace !== m) return;
      if (seen[p.product]) return;
      seen[p.product] = true;
      var o = el("option", p.product);
      o.value = p.product;
      sel.appendChild(o);
    });
    sel.value = seen[keep] ? keep : "";
  }

  function num(n) {
    var td = el("td", n, "num" + (n ? "" : " zero"));
    return td;
  }

  function renderGroups(data) {
    var body = $("groups").tBodies[0];
    body.replaceChildren();
    var groups = data.groups || [];
    if (!groups.length) {
      var td = el("td", "No records match.", "empty");
      td.colSpan = 10;
      body.appendChild(el("tr")).appendChild(td);
    }
    groups.forEach(function (g) {
      var tr = el("tr");
      tr.appendChild(el("td", MARKETS[g.marketplace] || g.marketplace));
      tr.appendChild(el("td", g.product, "mono"));
      var c = el("td", null, "mono");
      var b = el("button", g.customer, "link");
      b.type = "button";
      b.title = "Show this customer's records";
      b.addEventListener("click", function () { setCustomer(g.customer); });
      c.appendChild(b);
      tr.appendChild(c);
      // The contract, when the agent knows it, with the seller's labels (properties).
      var ct = el("td");
      if (g.contract) {
        ct.appendChild(el("span", g.contract.status));
        if (g.contract.plan) ct.appendChild(el("span", "plan " + g.contract.plan, "sub"));
        var props = g.contract.properties || {};
        Object.keys(props).forEach(function (k) { ct.appendChild(el("span", k + ": " + props[k], "sub")); });
        if (g.contract.cancelled_at) ct.appendChild(el("span", "cancelled " + fmtTime(g.contract.cancelled_at), "sub"));
      } else {
        ct.appendChild(el("span", "unknown", "muted"));
      }
      tr.appendChild(ct);
      VIEWS.forEach(function (v) { tr.appendChild(num(g[v] || 0)); });
      tr.appendChild(el("td", fmtTime(g.last_usage), "mono"));
      body.appendChild(tr);
    });
    $("groups-note").textContent = groups.length + (data.truncated ? "+ contracts (narrow the filters to see the rest)" : " contract" + (groups.length === 1 ? "" : "s"));
  }

  function renderRows(data) {
    var body = $("rows").tBodies[0];
    body.replaceChildren();
    var rows = data.rows || [];
    if (!rows.length) {
      var td = el("td", "No records match.", "empty");
      td.colSpan = 10;
      body.appendChild(el("tr")).appendChild(td);
    }
    rows.forEach(function (r) {
      var tr = el("tr");
      var st = el("td");
      var view = r.view || r.status;
      var pill = el("span", r.status === "duplicate" ? "duplicate" : (LABELS[view] || r.status), "pill " + (view === "sent" ? "accepted" : view));
      pill.title = "ledger state: " + r.status + (r.attempts ? ", " + r.attempts + " call" + (r.attempts === 1 ? "" : "s") : "");
      st.appendChild(pill);
      tr.appendChild(st);
      tr.appendChild(el("td", MARKETS[r.marketplace] || r.marketplace));
      tr.appendChild(el("td", r.product, "mono"));
      tr.appendChild(el("td", r.customer, "mono"));
      tr.appendChild(el("td", r.dimension, "mono"));
      var when = el("td", fmtTime(r.start_time), "mono");
      if (r.end_time) when.appendChild(el("span", "to " + fmtTime(r.end_time), "sub"));
      tr.appendChild(when);
      tr.appendChild(el("td", r.quantity, "num"));
      var ans = el("td");
      if (r.answer) ans.appendChild(el("code", r.answer));
      if (r.reason) ans.appendChild(el("span", r.reason, "reason"));
      if (r.record_id) ans.appendChild(el("span", "record id " + r.record_id, "sub"));
      if (r.marketplace_record_id) ans.appendChild(el("span", "marketplace id " + r.marketplace_record_id, "sub"));
      tr.appendChild(ans);
      var dl = el("td");
      if (r.deadline) {
        var u = until(r.deadline.at);
        dl.appendChild(el("span", u.text, u.cls));
        dl.appendChild(el("span", fmtTime(r.deadline.at) + " (" + r.deadline.rule + ")", "sub"));
      }
      tr.appendChild(dl);
      tr.appendChild(el("td", fmtTime(r.sent_at), "mono"));
      body.appendChild(tr);
    });
    var from = data.total ? data.offset + 1 : 0, to = data.offset + rows.length;
    $("page-note").textContent = from + "–" + to + " of " + data.total;
    $("prev").disabled = data.offset <= 0;
    $("next").disabled = to >= data.total;
  }

  function load() {
    var seq = ++state.seq;
    var f = filters();
    var rowsParams = Object.assign({ limit: LIMIT, offset: state.offset }, f);
    return Promise.all([getJSON("/v1/status/summary", f), getJSON("/v1/status/rows", rowsParams)])
      .then(function (res) {
        if (seq !== state.seq) return;
        var agentNow = Date.parse(res[0].now);
        if (!isNaN(agentNow)) state.skew = agentNow - Date.now();
        renderTotals(res[0].totals);
        renderProducts(res[0].products);
        renderGroups(res[0]);
        renderRows(res[1]);
        banner("");
        $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) {
        if (seq !== state.seq) return;
        if (e.unauthorized) { signOut("Your token was refused; sign in again."); return; }
        banner("Could not load the status: " + e.message, true);
      });
  }

  function changed() { state.offset = 0; load(); }

  function setCustomer(c) {
    state.customer = c;
    $("customer-filter").hidden = !c;
    $("customer-name").textContent = c;
    changed();
  }

  function showApp() {
    $("signin").hidden = true;
    $("app").hidden = false;
    $("session").hidden = false;
    load();
    if (state.timer) clearInterval(state.timer);
    state.timer = setInterval(function () { if (!document.hidden) load(); }, REFRESH_MS);
  }

  function signOut(message) {
    setToken("");
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    $("app").hidden = true;
    $("session").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function init() {
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = $("token").value.trim();
      if (!t) { $("signin-error").textContent = "Enter the API token."; return; }
      $("signin-error").textContent = "";
      getJSON("/v1/status/summary", {}, t)
        .then(function () { setToken(t); showApp(); })
        .catch(function (e) {
          $("signin-error").textContent = e.unauthorized ? "That token was refused." : "Could not reach the agent: " + e.message;
        });
    });
    $("sign-out").addEventListener("click", function () { signOut(""); });
    $("refresh").addEventListener("click", load);
    var typing = null;
    $("q").addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(changed, 250); });
    ["marketplace", "product", "status"].forEach(function (id) { $(id).addEventListener("change", changed); });
    ["since", "until"].forEach(function (id) { $(id).addEventListener("change", changed); });
    $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); changed(); });
    $("clear").addEventListener("click", function () {
      ["q", "marketplace", "product", "status", "since", "until"].forEach(function (id) { $(id).value = ""; });
      setCustomer("");
    });
    $("customer-clear").addEventListener("click", function () { setCustomer(""); });
    $("prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - LIMIT); load(); });
    $("next").addEventListener("click", function () { state.offset += LIMIT; load(); });

    // Signed in already (this tab's token, HTTP Basic, or an agent without auth on
    // loopback)? Then straight to the data; otherwise the sign-in form.
    getJSON("/v1/status/summary", {})
      .then(showApp)
      .catch(function (e) { signOut(e.unauthorized ? "" : "Could not reach the agent: " + e.message); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
