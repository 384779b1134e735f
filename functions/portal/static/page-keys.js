// Keys: the team's API keys; create one (its secret is shown once), revoke one, give one its
// own spend cap per day or month (a key budget: PUT/DELETE .../keys/{key_id}/budget).
// Team keys use /me/keys; an admin looking at another team uses /admin/teams/{team}/keys.
"use strict";

// "5", "0.25", "$12.5" -> integer micro-USD, without floats; null when it is not an amount.
function usdToMicro(text) {
  const match = /^\s*\$?(\d{1,9})(?:\.(\d{0,6}))?\s*$/.exec(text || "");
  if (!match) return null;
  return Number(match[1]) * 1000000 + Number((match[2] || "").padEnd(6, "0"));
}

function budgetText(budget, usd) {
  if (!budget) return "none";
  return `${usd(budget.limit_micro_usd)} per ${budget.period}: ${usd(budget.used_micro_usd)} used, ${usd(budget.remaining_micro_usd)} left`;
}

window.aigw.registerPage({
  id: "keys",
  title: "API keys",
  order: 20,
  async render(container, ctx) {
    const { el, api, table, date, usd } = window.aigw;
    const own = ctx.team === ctx.me.team.team_id;
    const base = own ? "/me/keys" : `/admin/teams/${encodeURIComponent(ctx.team)}/keys`;

    const secretBox = el("div", { id: "new-secret", "aria-live": "polite" });
    const formError = el("p", { class: "error", id: "key-form-error", "aria-live": "polite" });
    const list = el("div", { id: "key-list" });
    const budgetBox = el("div", { id: "key-budget", "aria-live": "polite" });

    async function refresh() {
      const keys = (await api(base)).data;
      list.replaceChildren(
        table(
          [
            { label: "Name", render: (k) => k.name || "—" },
            { label: "Prefix", render: (k) => el("code", {}, k.prefix + "…") },
            { label: "Role", key: "role" },
            { label: "Models", render: (k) => (k.allowed_models ? k.allowed_models.join(", ") : "all") },
            { label: "Status", render: (k) => el("span", { class: "status status-" + k.status }, k.status) },
            { label: "Created", render: (k) => date(k.created_at) },
            { label: "Expires", render: (k) => date(k.expires_at) },
            { label: "Budget", render: (k) => el("span", { "data-budget-of": k.key_id }, budgetText(k.budget, usd)) },
            {
              label: "Action",
              render: (k) =>
                k.status === "active" && (ctx.isAdmin || k.role !== "admin")
                  ? [
                      el(
                        "button",
                        {
                          type: "button",
                          class: "secondary",
                          "data-budget-key-id": k.key_id,
                          "aria-label": `Set the budget of key ${k.name || k.prefix}`,
                          onclick: () => editBudget(k),
                        },
                        "Budget"
                      ),
                      " ",
                      el(
                        "button",
                        {
                          type: "button",
                          class: "danger",
                          "data-key-id": k.key_id,
                          "aria-label": `Revoke key ${k.name || k.prefix}`,
                          onclick: () => revoke(k),
                        },
                        "Revoke"
                      ),
                    ]
                  : "",
            },
          ],
          keys,
          { caption: `Keys of team ${ctx.team}`, empty: "This team has no keys." }
        )
      );
    }

    function editBudget(key) {
      const error = el("p", { class: "error", id: "budget-error", "aria-live": "polite" });
      const current = key.budget;
      const form = el(
        "form",
        { class: "card", id: "budget-form" },
        el("h2", {}, "Budget of key ", el("code", {}, key.prefix + "…"), key.name ? ` (${key.name})` : ""),
        el("p", { class: "help" }, "Its own spend cap, on top of the team's plan or credits. A call that would pass it is refused with 402 key_budget_exhausted."),
        el("label", { for: "budget-usd" }, "Cap (USD)"),
        el("input", { id: "budget-usd", name: "usd", inputmode: "decimal", placeholder: "5.00", value: current ? (current.limit_micro_usd / 1e6).toString() : "" }),
        el("label", { for: "budget-period" }, "Per"),
        el(
          "select",
          { id: "budget-period", name: "period" },
          ["day", "month"].map((p) => el("option", { value: p, selected: current && current.period === p ? true : null }, p === "day" ? "UTC day" : "calendar month"))
        ),
        error,
        el("button", { type: "submit" }, "Save budget"),
        " ",
        current ? el("button", { type: "button", class: "danger", id: "budget-remove", onclick: () => save(null) }, "Remove budget") : "",
        " ",
        el("button", { type: "button", class: "link", onclick: () => budgetBox.replaceChildren() }, "Cancel")
      );
      async function save(body) {
        const url = `${base}/${encodeURIComponent(key.key_id)}/budget`;
        try {
          await api(url, body ? { method: "PUT", body } : { method: "DELETE" });
          budgetBox.replaceChildren();
          await refresh();
        } catch (failure) {
          error.textContent = failure.message;
        }
      }
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const micro = usdToMicro(form.elements.usd.value);
        if (micro === null) {
          error.textContent = "Enter the cap in USD, for example 5 or 0.50.";
          return;
        }
        save({ limit_micro_usd: micro, period: form.elements.period.value });
      });
      budgetBox.replaceChildren(form);
      form.elements.usd.focus();
    }

    async function revoke(key) {
      const self = key.key_id === ctx.me.key.key_id;
      const warning = self ? " This is the key you are signed in with: you will be signed out." : "";
      if (!window.confirm(`Revoke key ${key.name || key.prefix}? Calls with it fail at once.${warning}`)) return;
      try {
        await api(`${base}/${encodeURIComponent(key.key_id)}`, { method: "DELETE" });
        if (self) return window.location.reload();
        await refresh();
      } catch (error) {
        list.prepend(window.aigw.errorBox(error));
      }
    }

    const form = el(
      "form",
      { id: "create-key", class: "card" },
      el("h2", {}, "Create a key"),
      el("label", { for: "key-name" }, "Name"),
      el("input", { id: "key-name", name: "name", maxlength: 200, placeholder: "ci, laptop, staging…" }),
      el("label", { for: "key-models" }, "Models (optional)"),
      el("input", { id: "key-models", name: "models", placeholder: "mock/echo, openai/*", "aria-describedby": "key-models-help" }),
      el("p", { id: "key-models-help", class: "help" }, "Comma-separated, globs allowed. Empty: the same models as your key."),
      el("label", { for: "key-expires" }, "Expires"),
      el(
        "select",
        { id: "key-expires", name: "expires" },
        el("option", { value: "" }, "never"),
        ["1", "7", "30", "90", "365"].map((d) => el("option", { value: d }, d + (d === "1" ? " day" : " days")))
      ),
      el("label", { for: "key-budget-usd" }, "Budget (optional, USD)"),
      el("input", { id: "key-budget-usd", name: "budget", inputmode: "decimal", placeholder: "5.00", "aria-describedby": "key-budget-help" }),
      el("select", { id: "key-budget-period", name: "budgetPeriod", "aria-label": "Budget period" }, el("option", { value: "day" }, "per UTC day"), el("option", { value: "month" }, "per calendar month")),
      el("p", { id: "key-budget-help", class: "help" }, "The key's own spend cap. Empty: only the team's terms apply."),
      formError,
      el("button", { type: "submit" }, "Create key")
    );

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formError.textContent = "";
      const body = { name: form.elements.name.value.trim() };
      const models = form.elements.models.value.split(",").map((m) => m.trim()).filter(Boolean);
      if (models.length) body.allowed_models = models;
      const days = form.elements.expires.value;
      if (days) body.expires_at = new Date(Date.now() + Number(days) * 86400000).toISOString();
      const cap = form.elements.budget.value.trim();
      if (cap) {
        const micro = usdToMicro(cap);
        if (micro === null) {
          formError.textContent = "Enter the budget in USD, for example 5 or 0.50.";
          return;
        }
        body.budget = { limit_micro_usd: micro, period: form.elements.budgetPeriod.value };
      }
      try {
        const created = await api(base, { method: "POST", body });
        form.reset();
        showSecret(created);
        await refresh();
      } catch (error) {
        formError.textContent = error.message;
      }
    });

    function showSecret(created) {
      const value = el("input", { id: "secret-value", readonly: true, value: created.secret, "aria-label": "New API key", spellcheck: "false" });
      const copy = el(
        "button",
        {
          type: "button",
          onclick: async () => {
            value.select();
            try {
              await navigator.clipboard.writeText(created.secret);
              copy.textContent = "Copied";
            } catch (_) {
              copy.textContent = "Select and copy";
            }
          },
        },
        "Copy"
      );
      secretBox.replaceChildren(
        el(
          "div",
          { class: "card notice", role: "status" },
          el("h2", {}, "New key ", el("code", {}, created.prefix + "…"), " created"),
          el("p", {}, "This is the only time the key is shown. Store it now; only its hash is kept."),
          el("div", { class: "secret" }, value, copy),
          el("button", { type: "button", class: "link", onclick: () => secretBox.replaceChildren() }, "I have stored it, hide it")
        )
      );
      value.focus();
      value.select();
    }

    container.append(secretBox, list, budgetBox, form);
    await refresh();
  },
});
