// Agent payments: agents that meet a 402 top up the team's credits themselves (Machine
// Payments Protocol, Stripe). Shows the team's settings, the pack on offer, today's top-ups and
// the audit list (who, when, amount, PaymentIntent). Admin keys change any setting through
// /admin/teams/{team}/machine-payments; team keys read /me/machine-payments and may only switch
// machine payments off (a key an agent holds never widens its own spending).
"use strict";

(function () {
  function path(ctx) {
    const admin = ctx.me.role === "admin";
    return admin ? `/admin/teams/${encodeURIComponent(ctx.team)}/machine-payments` : "/me/machine-payments";
  }

  function settings(view, ctx, rerender) {
    const { el, usd, api, errorBox } = window.aigw;
    const admin = ctx.me.role === "admin";
    const pack = view.pack;
    const state = view.enabled
      ? el("span", { class: "status status-active" }, "On")
      : el("span", { class: "status status-revoked" }, "Off");
    const save = async (body, box) => {
      try {
        await api(path(ctx), { method: "PUT", body });
        rerender();
      } catch (error) {
        box.replaceChildren(errorBox(error));
      }
    };
    const feedback = el("div", {});
    const facts = el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Machine payments"), el("dd", { "data-mpp-state": view.enabled ? "on" : "off" }, state, view.self_serve ? " · also without a subscription" : ""),
      el("dt", {}, "Pack an agent may buy"),
      el("dd", {}, pack ? `${pack.plan_id}: ${usd(pack.credits_micro_usd)} of credits for ${usd(Number(pack.amount) * 10000)}` : "none"),
      el("dt", {}, "Daily ceilings"), el("dd", {}, `${view.team_daily_limit} for the team, ${view.key_daily_limit} per key`),
      el("dt", {}, "Top-ups today"), el("dd", { "data-mpp-today": view.today.team_top_ups }, String(view.today.team_top_ups))
    );
    const out = [el("h2", {}, "Agents paying a 402"), facts];
    if (!view.configured) out.push(el("p", { class: "hint" }, "This gateway has no Stripe profile id set: no challenge is offered yet."));
    if (admin) {
      const form = el(
        "form",
        { class: "inline", "aria-label": "Machine payment settings" },
        el("label", {}, el("input", { type: "checkbox", name: "enabled", checked: view.enabled }), " On"),
        el("label", {}, el("input", { type: "checkbox", name: "self_serve", checked: view.self_serve }), " Also without a subscription"),
        el("label", {}, "Pack ", el("input", { name: "pack_id", value: view.pack_id || (pack && pack.plan_id) || "", size: 14 })),
        el("label", {}, "Team/day ", el("input", { name: "team_daily_limit", type: "number", min: 0, value: view.team_daily_limit, size: 4 })),
        el("label", {}, "Key/day ", el("input", { name: "key_daily_limit", type: "number", min: 0, value: view.key_daily_limit, size: 4 })),
        el("button", { type: "submit" }, "Save")
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const body = {
          enabled: data.get("enabled") === "on",
          self_serve: data.get("self_serve") === "on",
          team_daily_limit: Number(data.get("team_daily_limit")),
          key_daily_limit: Number(data.get("key_daily_limit")),
        };
        if (data.get("pack_id")) body.pack_id = String(data.get("pack_id"));
        save(body, feedback);
      });
      out.push(form);
    } else if (view.enabled) {
      out.push(el("p", { class: "actions" }, el("button", { type: "button", onclick: () => save({ enabled: false }, feedback) }, "Switch off")));
    }
    out.push(feedback);
    return out;
  }

  function audit(view) {
    const { el, table, usd } = window.aigw;
    return [
      el("h2", {}, "Machine payments"),
      table(
        [
          { label: "When", key: "created_at" },
          { label: "Key", render: (p) => `${p.key_name || ""} ${p.key_prefix || p.key_id}`.trim() },
          { label: "Paid", numeric: true, render: (p) => usd(p.amount_cents * 10000) },
          { label: "Credits", numeric: true, render: (p) => usd(p.credits_micro_usd) },
          { label: "PaymentIntent", render: (p) => el("code", {}, p.payment_intent) },
          { label: "Request", render: (p) => el("code", {}, p.request_id) },
        ],
        view.payments,
        { empty: "No agent has paid yet.", caption: "Latest first" }
      ),
    ];
  }

  window.aigw.registerPage({
    id: "agent-payments",
    title: "Agent payments",
    order: 36,
    async render(container, ctx) {
      const { el } = window.aigw;
      const rerender = async () => {
        const view = await window.aigw.api(path(ctx));
        container.replaceChildren(el("section", { class: "card" }, settings(view, ctx, rerender)), el("section", { class: "card" }, audit(view)));
      };
      await rerender();
    },
  });
})();
