// Starts the portal: sign-in, the navigation built from the page registry, hash routing
// (#/keys), the admin's team switcher and the payment-required banner.
"use strict";

(function () {
  const { el, api, session, pages, on, fixButton, withoutLink } = window.aigw;
  const $ = (id) => document.getElementById(id);
  const ctx = { me: null, team: null, isAdmin: false, teams: [], pageId: null };
  window.aigw.ctx = ctx;

  function currentPageId() {
    const match = /^#\/([a-z0-9-]+)/.exec(location.hash);
    return match ? match[1] : null;
  }

  function visiblePages() {
    return pages.filter((p) => p.visible(ctx));
  }

  function showSignIn(message) {
    $("nav").hidden = true;
    $("who").hidden = true;
    $("page").replaceChildren();
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("signin-key").value = "";
    $("signin-key").focus();
  }

  async function signIn(key) {
    const me = await api("/me", { key });
    session.signIn(key);
    return me;
  }

  async function start(me) {
    ctx.me = me;
    ctx.isAdmin = me.role === "admin";
    ctx.team = (ctx.isAdmin && session.team()) || me.team.team_id;
    ctx.teams = [];
    if (ctx.isAdmin) {
      try {
        ctx.teams = (await api("/admin/teams")).data.map((t) => t.team_id);
      } catch (_) {
        ctx.teams = [me.team.team_id];
      }
      if (!ctx.teams.includes(ctx.team)) ctx.team = me.team.team_id;
    }
    $("signin").hidden = true;
    renderWho();
    renderNav();
    await route();
  }

  function renderWho() {
    const who = $("who");
    const name = ctx.me.key.name || ctx.me.key.prefix + "…";
    const parts = [el("span", { class: "key-name", title: name }, name), el("span", { class: "badge" }, ctx.me.role)];
    if (ctx.isAdmin) {
      const select = el(
        "select",
        { id: "team-select", onchange: (e) => { ctx.team = e.target.value; session.setTeam(ctx.team); route(); } },
        ctx.teams.map((t) => el("option", { value: t, selected: t === ctx.team }, t))
      );
      // The select shows the team; its label is for screen readers (the header stays one row).
      parts.push(el("label", { for: "team-select", class: "team-label visually-hidden" }, "Team"), select);
    } else {
      parts.push(el("span", { class: "team" }, "Team " + ctx.me.team.name));
    }
    parts.push(el("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
    who.replaceChildren(...parts);
    who.hidden = false;
  }

  function renderNav() {
    const nav = $("nav");
    const id = currentPageId() || ctx.pageId;
    nav.replaceChildren(
      el(
        "ul",
        {},
        visiblePages().map((p) =>
          el("li", {}, el("a", { href: "#/" + p.id, "aria-current": p.id === id ? "page" : null }, p.title))
        )
      )
    );
    nav.hidden = false;
  }

  async function route() {
    if (!ctx.me) return;
    const available = visiblePages();
    const wanted = currentPageId() || ctx.pageId;
    const page = available.find((p) => p.id === wanted) || available[0];
    if (!page) return;
    ctx.pageId = page.id;
    if (currentPageId() !== page.id) history.replaceState(null, "", "#/" + page.id);
    renderNav();
    hideBanner();
    const container = el("section", { class: "page", "aria-labelledby": "page-title", "data-page": page.id });
    container.append(el("h1", { id: "page-title", tabindex: "-1" }, page.title));
    $("page").replaceChildren(container);
    document.title = page.title + " · aigw portal";
    try {
      await page.render(container, ctx);
    } catch (error) {
      container.append(window.aigw.errorBox(error));
    }
    container.setAttribute("data-ready", "true");
  }

  function signOut() {
    session.signOut();
    ctx.me = null;
    history.replaceState(null, "", location.pathname);
    showSignIn("Signed out.");
  }

  function hideBanner() {
    $("banner").hidden = true;
    $("banner").replaceChildren();
  }

  // Any call answered 402 shows why and the button that fixes it, on whatever page we are.
  on("paymentRequired", (error) => {
    const banner = $("banner");
    banner.className = "banner payment";
    banner.replaceChildren(
      el("strong", {}, "Payment required. "),
      el("span", {}, withoutLink(error.message), error.code ? " (" + error.code + ")" : ""),
      fixButton(error.problem)
    );
    banner.hidden = false;
  });

  // Back from Stripe (Checkout, the customer portal, an invoice): /billing/return sends the
  // browser here with what happened; say it once on the billing page, then tidy the URL.
  const RETURNS = {
    "checkout=success": "Payment complete: your subscription is active.",
    "checkout=cancel": "Checkout cancelled: nothing was charged.",
    "invoice=paid": "Invoice paid.",
    "billing=updated": "Back from billing.",
  };
  function takeReturnNotice() {
    const said = location.search.replace(/^\?/, "");
    if (!said) return;
    const text = RETURNS[said];
    history.replaceState(null, "", location.pathname + location.hash);
    if (text) window.aigw.returnNotice = text;
  }
  takeReturnNotice();

  on("unauthorized", (error) => {
    session.signOut();
    ctx.me = null;
    showSignIn(error.message + ". Sign in again.");
  });

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("signin-key").value.trim();
    $("signin-error").textContent = "";
    try {
      await start(await signIn(key));
      $("main").focus();
    } catch (error) {
      $("signin-error").textContent = error instanceof window.aigw.ApiError ? error.message : String(error);
    }
  });

  window.addEventListener("hashchange", () => {
    if (currentPageId()) route().then(() => $("page-title") && $("page-title").focus());
  });

  window.aigw.refresh = route;

  (async () => {
    const key = session.key();
    if (!key) return showSignIn();
    try {
      await start(await api("/me"));
    } catch (error) {
      if (!(error instanceof window.aigw.ApiError && error.status === 401)) showSignIn(error.message);
    }
  })();
})();
