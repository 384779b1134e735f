// The prompt API catalog (GET /catalog): each API's docs (from its OpenAPI document), state and
// the caller's access; a request-access button; for owners, lifecycle actions; a try-it form.
"use strict";

(function () {
  window.aigw.registerPage({
    id: "catalog",
    title: "API catalog",
    order: 25,
    async render(container) {
      const { el, api } = window.aigw;
      const list = el("div", { id: "catalog-list" });
      const search = el("input", { id: "catalog-q", type: "search", name: "q", placeholder: "name, title or description" });
      const form = el(
        "form",
        { class: "toolbar", role: "search" },
        el("label", { for: "catalog-q" }, "Search"),
        search,
        el("button", { type: "submit", class: "secondary" }, "Search")
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        load();
      });
      container.append(form, list);

      async function load() {
        const q = search.value.trim();
        const entries = (await api("/catalog" + (q ? "?q=" + encodeURIComponent(q) : ""))).data;
        list.replaceChildren(
          ...(entries.length ? entries.map((entry) => card(entry, load)) : [el("p", { class: "empty" }, "No prompt APIs to show.")])
        );
      }
      await load();
    },
  });

  const CALLABLE = ["owner", "shared", "approved"];

  function card(entry, reload) {
    const { el, api } = window.aigw;
    const slug = encodeURIComponent(entry.slug);
    const status = el("p", { class: "error", "aria-live": "polite" });
    const actions = el("div", { class: "actions" });
    const guard = (fn) => async () => {
      status.textContent = "";
      try {
        await fn();
      } catch (error) {
        status.textContent = error.message;
      }
    };
    const move = (to, label, extra) =>
      el(
        "button",
        {
          type: "button",
          class: to === "retired" ? "danger" : "secondary",
          onclick: guard(async () => {
            if (!window.confirm(`${label} ${entry.slug}?`)) return;
            await api(`/apis/${slug}/transitions`, { method: "POST", body: { to, ...(extra || {}) } });
            await reload();
          }),
        },
        label
      );

    if (entry.access === "owner") {
      const next = {
        draft: [["published", "Publish"]],
        published: [["deprecated", "Deprecate"]],
        deprecated: [["published", "Withdraw deprecation"], ["retired", "Retire"]],
        retired: [],
      }[entry.state] || [];
      for (const [to, label] of next) actions.append(move(to, label));
    } else if ((entry.access === "none" || entry.access === "rejected") && entry.visibility === "org") {
      actions.append(
        el(
          "button",
          {
            type: "button",
            onclick: guard(async () => {
              await api(`/apis/${slug}/access-requests`, { method: "POST", body: {} });
              await reload();
            }),
          },
          entry.access === "rejected" ? "Ask for access again" : "Request access"
        )
      );
    }

    const docs = el("details", { class: "docs" }, el("summary", {}, "Docs"));
    docs.addEventListener("toggle", guard(async () => {
      if (!docs.open || docs.dataset.loaded) return;
      docs.dataset.loaded = "true";
      const doc = await api(`/apis/${slug}/openapi.json`);
      docs.append(renderDocs(entry, doc));
    }));

    const parts = [
      el(
        "h2",
        {},
        entry.title,
        " ",
        el("code", {}, entry.slug),
        " ",
        el("span", { class: "badge state-" + entry.state }, entry.state)
      ),
      el("p", {}, entry.description || ""),
      el(
        "p",
        { class: "help" },
        `Owner ${entry.owner_team} · ${entry.visibility} · version ${entry.version ?? "none"} · your access: ${entry.access}`,
        entry.deprecated && entry.successor ? ` · successor ${entry.successor}` : "",
        entry.state === "deprecated" && entry.sunset_at ? ` · sunset ${window.aigw.date(entry.sunset_at)}` : "",
        entry.state === "retired" ? " · retired: calls answer 410 Gone" : ""
      ),
      actions,
      status,
      docs,
    ];
    if (CALLABLE.includes(entry.access) && entry.state !== "retired") parts.push(tryForm(entry));
    return el("article", { class: "card api", "data-slug": entry.slug }, parts);
  }

  function renderDocs(entry, doc) {
    const { el, table } = window.aigw;
    const operation = ((doc.paths || {})[entry.url] || {}).post || {};
    const schema = (((operation.requestBody || {}).content || {})["application/json"] || {}).schema || {};
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties || {}).map(([name, prop]) => ({
      name,
      type: prop.type || (prop.enum ? "one of " + prop.enum.join(", ") : "any"),
      required: required.has(name) ? "yes" : "no",
      description: prop.description || "",
    }));
    return el(
      "div",
      {},
      el("p", {}, "POST ", el("code", {}, entry.url), " with a JSON body:"),
      table(
        [
          { label: "Field", key: "name" },
          { label: "Type", key: "type" },
          { label: "Required", key: "required" },
          { label: "Description", key: "description" },
        ],
        rows,
        { rowHeaders: true, empty: "No input fields." }
      )
    );
  }

  function tryForm(entry) {
    const { el, api } = window.aigw;
    const id = "try-" + entry.slug;
    const dryRun = entry.access === "owner" && entry.state === "draft";
    const out = el("pre", { class: "code", hidden: true, "aria-live": "polite", id: id + "-out" });
    const error = el("p", { class: "error", "aria-live": "polite" });
    const variables = el("textarea", { id: id + "-vars", name: "variables", rows: 3, spellcheck: "false" }, "{}");
    const form = el(
      "form",
      { class: "try" },
      el("label", { for: id + "-vars" }, `Try ${entry.slug}: variables (JSON)`),
      variables,
      el("button", { type: "submit" }, dryRun ? "Dry run" : "Call"),
      error,
      out
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      let body;
      try {
        body = JSON.parse(variables.value || "{}");
      } catch (_) {
        error.textContent = "The variables are not valid JSON.";
        return;
      }
      try {
        const slug = encodeURIComponent(entry.slug);
        const answer = dryRun
          ? await api(`/apis/${slug}/dry-run`, { method: "POST", body: { variables: body } })
          : await api(`/apis/${slug}`, { method: "POST", body });
        out.textContent = JSON.stringify(answer.output !== undefined ? answer.output : answer, null, 2);
        out.hidden = false;
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
})();
