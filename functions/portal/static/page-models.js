// Models: what this key may call, with prices, whether this gateway has each provider's key,
// and a call to copy. The catalog holds hundreds of models: a filter narrows the table.
"use strict";

(function () {
  window.aigw.registerPage({
    id: "models",
    title: "Models",
    order: 40,
    async render(container) {
      const { el, api, table, number } = window.aigw;
      const models = (await api("/me/models")).data;
      const price = (value) => "$" + value;
      const ready = (m) => m.configured !== false;
      const missing = models.filter((m) => !ready(m)).length;
      container.append(
        el("p", {}, "Prices are USD per million tokens. Call any of these through the OpenAI-compatible ", el("code", {}, "/v1/chat/completions"), "."),
        ...(missing
          ? [
              el(
                "p",
                { class: "help", "data-unconfigured": missing },
                `${missing} of ${models.length} models need a provider key this gateway does not have ("not configured"); `,
                "an operator adds it (locally in .env.local, e.g. OPENAI_API_KEY; in AWS in SSM)."
              ),
            ]
          : [])
      );
      const search = el("input", { id: "models-q", type: "search", name: "q", placeholder: "model id or provider" });
      const readyOnly = el("input", { id: "models-ready", type: "checkbox", name: "ready" });
      const count = el("span", { class: "help", "aria-live": "polite", id: "models-count" });
      const list = el("div", { id: "models-list" });
      const shown = () => {
        const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
        return models.filter(
          (m) => (!readyOnly.checked || ready(m)) && words.every((w) => m.id.toLowerCase().includes(w) || m.provider.toLowerCase().includes(w))
        );
      };
      const refresh = () => {
        const rows = shown();
        count.textContent = rows.length === models.length ? `${models.length} models` : `${rows.length} of ${models.length} models`;
        list.replaceChildren(modelTable(rows));
      };
      search.addEventListener("input", refresh);
      readyOnly.addEventListener("change", refresh);
      const filter = el(
        "form",
        { class: "toolbar", role: "search" },
        el("label", { for: "models-q" }, "Filter"),
        search,
        el("label", { for: "models-ready" }, readyOnly, " ready here only"),
        count
      );
      filter.addEventListener("submit", (event) => event.preventDefault());
      container.append(filter, list);
      refresh();

      function modelTable(rows) {
        return table(
          [
            { label: "Model", render: (m) => el("code", {}, m.id) },
            {
              label: "Status",
              render: (m) =>
                ready(m)
                  ? el("span", { class: "status status-active", "data-configured": "true" }, "ready")
                  : el("span", { class: "status status-unconfigured", "data-configured": "false" }, "not configured"),
            },
            { label: "Provider", key: "provider" },
            { label: "Context", numeric: true, render: (m) => number(m.context_window) },
            { label: "Input", numeric: true, render: (m) => price(m.input_per_mtok) },
            { label: "Cached input", numeric: true, render: (m) => price(m.cached_input_per_mtok) },
            { label: "Output", numeric: true, render: (m) => price(m.output_per_mtok) },
          ],
          rows,
          {
            caption: "Models this key may use",
            rowHeaders: true,
            empty: models.length ? "No model matches the filter." : "This key may not use any model.",
          }
        );
      }
      if (models.length) container.append(tryIt(models));
      const origin = window.location.origin + document.querySelector('meta[name="aigw-api-base"]').content;
      const example = (preferred(models) || { id: "mock/echo" }).id;
      container.append(
        el("h2", {}, "From code"),
        el(
          "pre",
          { class: "code", tabindex: "0", "aria-label": "Example request" },
          `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer $AIGW_KEY" -H "Content-Type: application/json" \\\n  -d '{"model": "${example}", "messages": [{"role": "user", "content": "Hello"}]}'`
        )
      );
    },
  });

  // The model try-it starts with: the built-in mock/echo (it needs no provider key and costs
  // next to nothing), else the first model whose provider is configured here.
  function preferred(models) {
    return models.find((m) => m.id === "mock/echo" && m.configured !== false) || models.find((m) => m.configured !== false) || models[0];
  }

  // A one-message chat through /v1/chat/completions with the signed-in key; metered like any call.
  function tryIt(models) {
    const chosen = preferred(models);
    const { el, api } = window.aigw;
    const answer = el("div", { id: "try-answer", "aria-live": "polite" });
    const form = el(
      "form",
      { id: "try-it", class: "card" },
      el("h2", {}, "Try it"),
      el("label", { for: "try-model" }, "Model"),
      el(
        "select",
        { id: "try-model", name: "model" },
        // A model that can answer here is the default; the others say why they would not.
        models.map((m) =>
          el(
            "option",
            { value: m.id, selected: m === chosen },
            m.configured === false ? m.id + " (not configured)" : m.id
          )
        )
      ),
      el("label", { for: "try-message" }, "Message"),
      el("textarea", { id: "try-message", name: "message", rows: 3, required: true, maxlength: 4000 }),
      el("button", { type: "submit" }, "Send"),
      answer
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      answer.replaceChildren(el("p", { class: "help" }, "Waiting for the model…"));
      try {
        const completion = await api("/v1/chat/completions", {
          method: "POST",
          body: { model: form.elements.model.value, messages: [{ role: "user", content: form.elements.message.value }] },
        });
        const usage = completion.usage || {};
        answer.replaceChildren(
          el("blockquote", { class: "reply" }, completion.choices[0].message.content || ""),
          el("p", { class: "help" }, `${usage.prompt_tokens || 0} input and ${usage.completion_tokens || 0} output tokens`)
        );
      } catch (error) {
        answer.replaceChildren(window.aigw.errorBox(error));
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }
})();
