// Billing: whether the team may call, its plan, the quota bar, credits, and the buttons that
// open Stripe (signed gateway links that redirect to the Customer Portal or Checkout).
// Also a quota card on the overview. Team keys read /billing/status; an admin looking at
// another team reads /admin/teams/{team}/billing (no payment links: those are the team's).
"use strict";

(function () {
  async function load(ctx) {
    const own = ctx.team === ctx.me.team.team_id;
    return window.aigw.api(own ? "/billing/status" : `/admin/teams/${encodeURIComponent(ctx.team)}/billing`);
  }

  // "left" is what a new call can still be admitted against: what calls used and what budget
  // leases hold for calls in flight both count (the same numbers a 402 quotes).
  function bar(label, used, held, limit, format) {
    const { el } = window.aigw;
    const id = "bar-" + label.toLowerCase().replace(/[^a-z]+/g, "-");
    if (limit === null || limit === undefined) {
      return el("p", { class: "quota" }, `${label}: ${format(used)} used, no limit`);
    }
    const taken = used + (held || 0);
    const left = Math.max(limit - taken, 0);
    const heldText = held ? `, ${format(held)} reserved (calls in flight and budget leases)` : "";
    return el(
      "div",
      { class: "quota" },
      el("label", { for: id }, `${label}: ${format(used)} of ${format(limit)} used${heldText}, ${format(left)} left`),
      el("progress", { id, max: limit, value: Math.min(taken, limit), class: taken >= limit ? "full" : null })
    );
  }

  const LIVE = ["active", "trialing", "past_due", "unpaid", "incomplete", "paused"];

  function fixLinks(status) {
    const { el } = window.aigw;
    const links = status.links || {};
    const out = [];
    const fix = links.fix || links.portal || links.checkout;
    if (!status.allowed && fix) {
      out.push(el("a", { class: "button fix", href: fix, "data-fix": "true" }, "Fix payment"));
    }
    if (links.portal) {
      out.push(el("a", { class: "button secondary-link", href: links.portal, "data-manage": "true" }, "Manage billing"));
    }
    const subscribed = LIVE.includes(status.subscription_status || "");
    if (links.checkout && !subscribed && status.allowed) {
      out.push(el("a", { class: "button secondary-link", href: links.checkout, "data-subscribe": "true" }, "Subscribe"));
    }
    return out.length ? el("p", { class: "actions" }, out) : null;
  }

  function summary(status) {
    const { el, number, usd } = window.aigw;
    const state = status.allowed
      ? el("span", { class: "status status-active" }, "Active")
      : el("span", { class: "status status-revoked" }, "Refused: " + (status.refusal_code || "payment required"));
    return [
      el("p", { "data-billing-state": status.allowed ? "allowed" : "refused" }, state, status.funding ? ` · paid by ${status.funding}` : ""),
      bar("Tokens this period", status.tokens_used, status.tokens_reserved, status.monthly_tokens, number),
      status.spend_cap_micro_usd !== null ? bar("Spend this period", status.spend_used_micro_usd, status.spend_reserved_micro_usd, status.spend_cap_micro_usd, usd) : null,
      el("p", {}, "Credits: ", el("strong", { "data-credits": status.credits_micro_usd }, usd(status.credits_micro_usd)), status.credits_reserved_micro_usd ? ` (${usd(status.credits_reserved_micro_usd)} reserved by calls in flight and budget leases)` : ""),
      fixLinks(status),
    ];
  }

  // What a worker's budget lease still holds is counted as used once the lease is handed back
  // (locally a second after the last call; on AWS when the lease is flushed or reclaimed): while
  // something is reserved, the summary is read again, so the page catches up by itself.
  const HELD = ["tokens_reserved", "spend_reserved_micro_usd", "credits_reserved_micro_usd"];
  function refreshWhileReserved(card, ctx, status, rounds = 20) {
    if (rounds <= 0 || !HELD.some((name) => status[name])) return;
    setTimeout(async () => {
      if (!card.isConnected) return;
      let next;
      try {
        next = await load(ctx);
      } catch (_) {
        return;
      }
      if (!card.isConnected) return;
      card.replaceChildren(...summary(next).filter(Boolean));
      refreshWhileReserved(card, ctx, next, rounds - 1);
    }, 1500);
  }

  window.aigw.registerPage({
    id: "billing",
    title: "Billing",
    order: 35,
    async render(container, ctx) {
      const { el, date } = window.aigw;
      const status = await load(ctx);
      const iso = (value) => (value ? date(Date.parse(value) / 1000) : "—");
      if (window.aigw.returnNotice) {
        container.append(el("p", { class: "card notice", role: "status", "data-return-notice": "true" }, window.aigw.returnNotice));
        window.aigw.returnNotice = null;
      }
      const card = el("section", { class: "card", "data-billing-summary": "true" }, summary(status));
      refreshWhileReserved(card, ctx, status);
      container.append(
        card,
        el(
          "dl",
          { class: "facts" },
          el("dt", {}, "Plan"), el("dd", {}, status.plan_id || "none"),
          el("dt", {}, "Subscription"), el("dd", {}, status.subscription_status || "none"),
          el("dt", {}, "Period"), el("dd", {}, iso(status.period_start), " to ", iso(status.period_end)),
          el("dt", {}, "Grace until"), el("dd", {}, iso(status.grace_until))
        )
      );
    },
  });

  window.aigw.registerWidget({
    id: "quota",
    order: 10,
    async render(box, ctx) {
      const { el } = window.aigw;
      box.append(el("h2", {}, "Quota and credits"), ...summary(await load(ctx)).filter(Boolean));
    },
  });
})();
