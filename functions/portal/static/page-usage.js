// Usage and cost: per day and per model (and per key, per route), from /reports/usage, with
// CSV downloads. Every chart has a table alternative.
"use strict";

window.aigw.registerPage({
  id: "usage",
  title: "Usage and cost",
  order: 30,
  async render(container, ctx) {
    const { el, api, apiText, usd, number, daysAgo, isoDay, charts } = window.aigw;
    const state = window.aigw.usageState || (window.aigw.usageState = { days: 30 });
    const to = isoDay(new Date());
    const from = daysAgo(state.days - 1);
    const query = (groupBy) =>
      `/reports/usage?group_by=${groupBy}&from=${from}&to=${to}&team=${encodeURIComponent(ctx.team)}`;

    const range = el(
      "select",
      {
        id: "usage-range",
        onchange: (e) => {
          state.days = Number(e.target.value);
          window.aigw.refresh();
        },
      },
      [7, 30, 90, 365].map((d) => el("option", { value: d, selected: d === state.days }, `Last ${d} days`))
    );
    const downloads = ["day", "model", "key", "api"].map((groupBy) =>
      el(
        "button",
        { type: "button", class: "secondary", "data-csv": groupBy, onclick: () => download(groupBy) },
        `CSV by ${groupBy}`
      )
    );
    container.append(
      el("div", { class: "toolbar" }, el("label", { for: "usage-range" }, "Period"), range, el("span", { class: "spacer" }), downloads)
    );

    async function download(groupBy) {
      // Fetched with the key in a header, then saved: a plain link would need the key in the URL.
      const text = await apiText(query(groupBy) + "&format=csv");
      const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
      const link = el("a", { href: url, download: `aigw-usage-${ctx.team}-${groupBy}-${from}-${to}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }

    const [byDay, byModel, byKey, byRoute, byApi] = await Promise.all(
      ["day", "model", "key", "route", "api"].map((g) => api(query(g)))
    );
    const t = byDay.totals;
    container.append(
      el(
        "ul",
        { class: "tiles", "data-testid": "usage-totals" },
        el("li", {}, el("span", { class: "tile-label" }, "Spend"), el("span", { class: "tile-value", "data-total": "cost" }, usd(t.cost_usd))),
        el("li", {}, el("span", { class: "tile-label" }, "Calls"), el("span", { class: "tile-value", "data-total": "calls" }, number(t.calls))),
        el("li", {}, el("span", { class: "tile-label" }, "Tokens"), el("span", { class: "tile-value", "data-total": "tokens" }, number(t.total_tokens))),
        el("li", {}, el("span", { class: "tile-label" }, "Errors"), el("span", { class: "tile-value", "data-total": "errors" }, number(t.errors))),
        el("li", {}, el("span", { class: "tile-label" }, "Cache hits"), el("span", { class: "tile-value", "data-total": "cache-hits" }, number(t.cache_hits || 0))),
        el("li", {}, el("span", { class: "tile-label" }, "Saved by cache"), el("span", { class: "tile-value", "data-total": "cost-saved" }, usd(((t.cost_saved_micro_usd || 0) / 1e6).toFixed(6))))
      )
    );

    const columns = [
      { label: "Group", key: "group" },
      { label: "Calls", numeric: true, render: (r) => number(r.calls) },
      { label: "Errors", numeric: true, render: (r) => number(r.errors) },
      { label: "Input tokens", numeric: true, render: (r) => number(r.prompt_tokens) },
      { label: "Output tokens", numeric: true, render: (r) => number(r.completion_tokens) },
      { label: "Cost", numeric: true, render: (r) => usd(r.cost_usd) },
      { label: "Cache hits", numeric: true, render: (r) => number(r.cache_hits || 0) },
    ];
    const withLabel = (label) => [{ ...columns[0], label }, ...columns.slice(1)];
    const shortDay = (d) => d.slice(5);
    const plural = (n, word) => number(n) + " " + word + (n === 1 ? "" : "s");

    container.append(
      charts.bars({
        name: "cost-per-day",
        title: "Cost per day (USD)",
        summary: `Cost per day from ${from} to ${to}; total ${usd(t.cost_usd)}.`,
        points: byDay.rows.map((r) => ({ label: r.group, value: r.cost_micro_usd, display: usd(r.cost_usd) })),
        axis: (micro) => usd(Math.round(micro)),
        short: shortDay,
        columns: withLabel("Day"),
        rows: byDay.rows,
      }),
      charts.bars({
        name: "calls-per-day",
        title: "Calls per day",
        summary: `Calls per day from ${from} to ${to}; ${number(t.calls)} calls, ${number(t.errors)} errors.`,
        points: byDay.rows.map((r) => ({
          label: r.group,
          value: r.calls,
          display: plural(r.calls, "call"),
          part: r.errors,
          partDisplay: plural(r.errors, "error"),
        })),
        axis: (v) => number(v),
        integer: true,
        short: shortDay,
        legend: ["Calls", "Errors"],
        columns: withLabel("Day"),
        rows: byDay.rows,
      }),
      charts.hbars({
        name: "cost-per-model",
        title: "Cost per model",
        summary: byModel.rows.map((r) => `${r.group}: ${usd(r.cost_usd)}`).join("; ") || "No calls in this period.",
        points: byModel.rows.map((r) => ({ label: r.group, value: r.cost_micro_usd, display: usd(r.cost_usd) + " · " + plural(r.calls, "call") })),
        columns: withLabel("Model"),
        rows: byModel.rows,
      })
    );

    let names = {};
    try {
      const own = ctx.team === ctx.me.team.team_id;
      const keys = (await api(own ? "/me/keys" : `/admin/teams/${encodeURIComponent(ctx.team)}/keys`)).data;
      names = Object.fromEntries(keys.map((k) => [k.key_id, (k.name || "unnamed") + " (" + k.prefix + "…)"]));
    } catch (_) {
      names = {};
    }
    container.append(
      el("h2", {}, "Per key"),
      window.aigw.table(withLabel("Key"), byKey.rows.map((r) => ({ ...r, group: names[r.group] || r.group })), { rowHeaders: true, empty: "No calls in this period." }),
      el("h2", {}, "Per prompt API"),
      window.aigw.table(withLabel("Prompt API"), byApi.rows, { rowHeaders: true, empty: "No prompt API calls in this period." }),
      el("h2", {}, "Per route"),
      window.aigw.table(withLabel("Route"), byRoute.rows, { rowHeaders: true, empty: "No calls in this period." })
    );
  },
});
