// The portal's shared layer: session, calls to the JSON APIs, the page registry, DOM helpers.
// Pages are separate scripts (page-*.js) that call aigw.registerPage(); app.js starts the portal
// once every script has run. Nothing here loads from another host.
"use strict";

(function () {
  const SESSION_KEY = "aigw.apiKey";
  const TEAM_KEY = "aigw.team";
  const apiBase = document.querySelector('meta[name="aigw-api-base"]').content;
  const pages = [];
  const widgets = [];

  class ApiError extends Error {
    constructor(status, problem) {
      const message =
        (problem && (problem.detail || (problem.error && problem.error.message))) || "HTTP " + status;
      super(message);
      this.status = status;
      this.problem = problem || {};
      this.code = this.problem.code || (this.problem.error && this.problem.error.code) || null;
    }
  }

  // The key lives in sessionStorage only: never a cookie (nothing to forge cross-site), never a URL.
  const session = {
    key: () => sessionStorage.getItem(SESSION_KEY),
    signIn: (key) => sessionStorage.setItem(SESSION_KEY, key),
    signOut: () => {
      sessionStorage.removeItem(SESSION_KEY);
      sessionStorage.removeItem(TEAM_KEY);
    },
    team: () => sessionStorage.getItem(TEAM_KEY),
    setTeam: (team) => sessionStorage.setItem(TEAM_KEY, team),
  };

  const listeners = { unauthorized: [], paymentRequired: [] };
  function on(event, fn) {
    listeners[event].push(fn);
  }

  async function request(path, options) {
    const opts = options || {};
    const headers = { Authorization: "Bearer " + (opts.key || session.key() || "") };
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const response = await fetch(apiBase + path, {
      method: opts.method || "GET",
      headers,
      body,
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch (_) {
        problem = {};
      }
      const error = new ApiError(response.status, problem);
      if (response.status === 401 && !opts.key) listeners.unauthorized.forEach((fn) => fn(error));
      if (response.status === 402) listeners.paymentRequired.forEach((fn) => fn(error));
      throw error;
    }
    return response;
  }

  async function api(path, options) {
    const response = await request(path, options);
    return response.status === 204 ? null : response.json();
  }

  async function apiText(path, options) {
    return (await request(path, options)).text();
  }

  // A 402 problem names the page that fixes it (Stripe checkout or portal). Billing decides
  // the field; any absolute http(s) link ending in _url (or "links") is offered as the fix.
  function fixLink(problem) {
    const candidates = [];
    if (problem && typeof problem.fix_url === "string") candidates.push(problem.fix_url);
    for (const [name, value] of Object.entries(problem || {})) {
      if (typeof value === "string" && /_url$|^url$|^href$/.test(name)) candidates.push(value);
      if (name === "links" && value && typeof value === "object") {
        for (const link of Object.values(value)) {
          if (typeof link === "string") candidates.push(link);
          else if (link && typeof link.href === "string") candidates.push(link.href);
        }
      }
    }
    return candidates.find((url) => /^https?:\/\//.test(url)) || null;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function table(columns, rows, options) {
    const opts = options || {};
    const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.numeric ? "num" : null }, c.label))));
    const body = el(
      "tbody",
      {},
      rows.length
        ? rows.map((row) =>
            el(
              "tr",
              {},
              columns.map((c, i) => {
                const value = c.render ? c.render(row) : row[c.key];
                const attrs = { class: c.numeric ? "num" : null };
                return i === 0 && opts.rowHeaders ? el("th", { scope: "row", ...attrs }, value) : el("td", attrs, value);
              })
            )
          )
        : el("tr", {}, el("td", { colspan: columns.length, class: "empty" }, opts.empty || "Nothing yet."))
    );
    return el("table", { class: "data" }, opts.caption ? el("caption", {}, opts.caption) : null, head, body);
  }

  // Money arrives as exact decimal strings (cost_usd) or integer micro-USD: format without floats.
  function usd(value) {
    let text = typeof value === "number" ? microToDecimal(value) : String(value);
    let [whole, frac = ""] = text.split(".");
    frac = frac.replace(/0+$/, "");
    if (frac.length < 2) frac = frac.padEnd(2, "0");
    return "$" + Number(whole).toLocaleString("en-US") + "." + frac;
  }

  function microToDecimal(micro) {
    const sign = micro < 0 ? "-" : "";
    const abs = Math.abs(Math.trunc(micro));
    return sign + Math.floor(abs / 1e6) + "." + String(abs % 1e6).padStart(6, "0");
  }

  function number(value) {
    return Number(value || 0).toLocaleString("en-US");
  }

  function date(epochSeconds) {
    if (epochSeconds === null || epochSeconds === undefined) return "never";
    return new Date(epochSeconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  function isoDay(d) {
    return d.toISOString().slice(0, 10);
  }

  function daysAgo(n) {
    const d = new Date();
    d.setUTCDate(d.getUTCDate() - n);
    return isoDay(d);
  }

  function registerPage(page) {
    if (!page.id || !page.title || typeof page.render !== "function") throw new Error("page needs id, title, render");
    pages.push({ order: 100, visible: () => true, ...page });
    pages.sort((a, b) => a.order - b.order);
  }

  // Widgets are small cards on the overview page (a quota bar, credits...), contributed by
  // other pages' scripts without touching the overview.
  function registerWidget(widget) {
    widgets.push({ order: 100, visible: () => true, ...widget });
    widgets.sort((a, b) => a.order - b.order);
  }

  // A 402's message may end with its fix link as text; the link is offered as a button instead.
  function withoutLink(message) {
    return String(message || "").replace(/\s*Fix it here:\s*\S+\s*$/, "");
  }

  function fixButton(problem, label) {
    const link = fixLink(problem);
    return link ? el("a", { class: "button fix", href: link, rel: "noopener", "data-fix": "true" }, label || "Fix payment") : null;
  }

  function errorBox(error) {
    if (!(error instanceof ApiError)) return el("p", { class: "error", role: "alert" }, "Something went wrong: " + error);
    if (error.status === 402) {
      return el(
        "div",
        { class: "error payment-error", role: "alert" },
        el("p", {}, withoutLink(error.message), error.code ? " (" + error.code + ")" : ""),
        fixButton(error.problem)
      );
    }
    return el("p", { class: "error", role: "alert" }, error.message);
  }

  window.aigw = {
    ApiError,
    api,
    apiText,
    request,
    session,
    on,
    fixLink,
    el,
    table,
    usd,
    number,
    date,
    isoDay,
    daysAgo,
    errorBox,
    fixButton,
    withoutLink,
    pages,
    widgets,
    registerPage,
    registerWidget,
    charts: {},
  };
})();
