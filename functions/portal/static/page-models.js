// Models: what this key may call, with prices, and a call to copy.
"use strict";

window.aigw.registerPage({
  id: "models",
  title: "Models",
  order: 40,
  async render(container) {
    const { el, api, table, number } = window.aigw;
    const models = (await api("/me/models")).data;
    const price = (value) => "$" + value;
    container.append(
      el("p", {}, "Prices are USD per million tokens. Call any of these through the OpenAI-compatible ", el("code", {}, "/v1/chat/completions"), "."),
      table(
        [
          { label: "Model", render: (m) => el("code", {}, m.id) },
          { label: "Provider", key: "provider" },
          { label: "Context", numeric: true, render: (m) => number(m.context_window) },
          { label: "Input", numeric: true, render: (m) => price(m.input_per_mtok) },
          { label: "Cached input", numeric: true, render: (m) => price(m.cached_input_per_mtok) },
          { label: "Output", numeric: true, render: (m) => price(m.output_per_mtok) },
        ],
        models,
        { caption: "Models this key may use", rowHeaders: true, empty: "This key may not use any model." }
      )
    );
    const origin = window.location.origin + document.querySelector('meta[name="aigw-api-base"]').content;
    const example = models.length ? models[0].id : "mock/echo";
    container.append(
      el("h2", {}, "Try it"),
      el(
        "pre",
        { class: "code", tabindex: "0", "aria-label": "Example request" },
        `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer $AIGW_KEY" -H "Content-Type: application/json" \\\n  -d '{"model": "${example}", "messages": [{"role": "user", "content": "Hello"}]}'`
      )
    );
  },
});
