// Overview: who you are, this month's totals, and the widgets other pages contribute
// (aigw.registerWidget), e.g. a quota bar or credits from the billing page.
"use strict";

window.aigw.registerPage({
  id: "overview",
  title: "Overview",
  order: 10,
  async render(container, ctx) {
    const { el, api, usd, number, date, widgets } = window.aigw;
    const key = ctx.me.key;
    container.append(
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Team"), el("dd", {}, ctx.me.team.name, " (", ctx.me.team.team_id, ")"),
        el("dt", {}, "Signed in with"), el("dd", {}, key.name || "unnamed key", " · ", el("code", {}, key.prefix + "…")),
        el("dt", {}, "Role"), el("dd", {}, ctx.me.role),
        el("dt", {}, "Models"), el("dd", {}, key.allowed_models ? key.allowed_models.join(", ") : "all"),
        el("dt", {}, "Expires"), el("dd", {}, date(key.expires_at))
      )
    );
    const today = new Date().toISOString().slice(0, 10);
    const month = today.slice(0, 7);
    const report = await api(`/reports/usage?group_by=month&from=${month}&to=${today}&team=${encodeURIComponent(ctx.team)}`);
    const t = report.totals;
    container.append(
      el("h2", {}, "This month", ctx.team !== ctx.me.team.team_id ? " · team " + ctx.team : ""),
      el(
        "ul",
        { class: "tiles", "data-testid": "month-totals" },
        el("li", {}, el("span", { class: "tile-label" }, "Spend"), el("span", { class: "tile-value", "data-total": "cost" }, usd(t.cost_usd))),
        el("li", {}, el("span", { class: "tile-label" }, "Calls"), el("span", { class: "tile-value", "data-total": "calls" }, number(t.calls))),
        el("li", {}, el("span", { class: "tile-label" }, "Tokens"), el("span", { class: "tile-value", "data-total": "tokens" }, number(t.total_tokens))),
        el("li", {}, el("span", { class: "tile-label" }, "Errors"), el("span", { class: "tile-value", "data-total": "errors" }, number(t.errors)))
      )
    );
    for (const widget of widgets.filter((w) => w.visible(ctx))) {
      const box = el("section", { class: "card widget", "data-widget": widget.id });
      container.append(box);
      try {
        await widget.render(box, ctx);
      } catch (error) {
        box.append(window.aigw.errorBox(error));
      }
    }
  },
});
