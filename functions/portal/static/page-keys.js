// Keys: the team's API keys; create one (its secret is shown once), revoke one.
// Team keys use /me/keys; an admin looking at another team uses /admin/teams/{team}/keys.
"use strict";

window.aigw.registerPage({
  id: "keys",
  title: "API keys",
  order: 20,
  async render(container, ctx) {
    const { el, api, table, date } = window.aigw;
    const own = ctx.team === ctx.me.team.team_id;
    const base = own ? "/me/keys" : `/admin/teams/${encodeURIComponent(ctx.team)}/keys`;

    const secretBox = el("div", { id: "new-secret", "aria-live": "polite" });
    const formError = el("p", { class: "error", id: "key-form-error", "aria-live": "polite" });
    const list = el("div", { id: "key-list" });

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
            {
              label: "Action",
              render: (k) =>
                k.status === "active" && (ctx.isAdmin || k.role !== "admin")
                  ? el(
                      "button",
                      {
                        type: "button",
                        class: "danger",
                        "data-key-id": k.key_id,
                        "aria-label": `Revoke key ${k.name || k.prefix}`,
                        onclick: () => revoke(k),
                      },
                      "Revoke"
                    )
                  : "",
            },
          ],
          keys,
          { caption: `Keys of team ${ctx.team}`, empty: "This team has no keys." }
        )
      );
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

    container.append(secretBox, list, form);
    await refresh();
  },
});
