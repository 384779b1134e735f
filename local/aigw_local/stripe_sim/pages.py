"""The simulator's pages: Checkout, the customer portal, the hosted invoice page, and an index.

Plain server-rendered HTML forms (no script), each page marked as simulated. The test cards
are Stripe's own test numbers and do what they do in Stripe's test mode.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aigw_local.stripe_sim import objects as o
from aigw_local.stripe_sim.account import CustomerView
from aigw_local.stripe_sim.store import Delivery

Obj = dict[str, Any]
CARD_LABELS = {
    "4242424242424242": "4242 4242 4242 4242: the payment succeeds",
    "4000000000000002": "4000 0000 0000 0002: the card is declined",
    "4000002760003184": "4000 0027 6000 3184: the bank asks for 3-D Secure authentication",
}
STYLE = """
* { box-sizing: border-box }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1a1f36; background: #f6f9fc }
a { color: #533afd }
.sim { background: #fff4ce; border-bottom: 2px solid #b45309; padding: .6rem 1.5rem; font-weight: 600 }
.sim span { font-weight: 400 }
main { max-width: 46rem; margin: 0 auto; padding: 1.5rem }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem }
.card { background: #fff; border: 1px solid #d5dbe1; border-radius: 8px; padding: 1.25rem; margin: 1rem 0 }
.amount { font-size: 2rem; font-weight: 700 }
.muted { color: #596171 }
fieldset { border: 1px solid #d5dbe1; border-radius: 6px; margin: 1rem 0; padding: .5rem 1rem }
legend { font-weight: 600 }
label { display: block; margin: .35rem 0 }
label input[type=radio] { margin: 0 .6rem 0 0 }
input[type=email] { font: inherit; width: 100%; padding: .45rem .6rem; border: 1px solid #8792a2;
  border-radius: 6px }
button { font: inherit; padding: .5rem 1.1rem; border-radius: 6px; border: 1px solid #533afd;
  background: #533afd; color: #fff; cursor: pointer; margin: .5rem .5rem 0 0 }
button.secondary { background: #fff; color: #533afd }
button.danger { background: #fff; color: #b3093c; border-color: #b3093c }
.error { color: #b3093c; font-weight: 600 }
.notice { color: #0e6245; font-weight: 600 }
table { width: 100%; border-collapse: collapse }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e3e8ee; font-size: .92rem;
  vertical-align: top }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; border: 1px solid currentColor;
  font-size: .85rem }
.status-active, .status-paid { color: #0e6245 }
.status-past_due, .status-open, .status-incomplete { color: #a04100 }
.status-canceled, .status-void { color: #596171 }
code { font-size: .9em }
form.inline { display: inline }
button.small { margin: 0; padding: .1rem .6rem; font-size: .85rem }
td code { word-break: break-all }
"""
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(cents: int) -> str:
    return f"${int(cents) / 100:,.2f}"


def day(epoch: Any) -> str:
    if not epoch:
        return "—"
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def layout(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · simulated Stripe</title><style>{STYLE}</style></head>
<body><div class="sim" role="note" data-simulated="stripe">Simulated Stripe <span>· aigw's local runner
stands in for Stripe because no STRIPE_API_KEY is set. No money moves and nothing leaves this machine;
the gateway receives the same signed webhook events Stripe would send.</span></div>
<main id="main">{body}</main></body></html>"""


def card_choices(selected: str = "4242424242424242") -> str:
    radios = "".join(
        f'<label><input type="radio" name="card" value="{number}"{" checked" if number == selected else ""}>'
        f"{e(label)}</label>"
        for number, label in CARD_LABELS.items()
    )
    return f"<fieldset><legend>Test card</legend>{radios}</fieldset>"


def _message(error: str | None, notice: str | None = None) -> str:
    out = ""
    if error:
        out += f'<p class="error" role="alert" id="payment-error">{e(error)}</p>'
    if notice:
        out += f'<p class="notice" role="status">{e(notice)}</p>'
    return out


# ---- Checkout -------------------------------------------------------------------------------------


def checkout(session: Obj, price: Obj, product: Obj | None, *, error: str | None = None) -> str:
    name = product["name"] if product else price.get("lookup_key")
    recurring = session["mode"] == "subscription"
    amount = money(session["amount_total"]) + (" per month" if recurring else "")
    team = session.get("client_reference_id")
    for_team = f" for team <code>{e(team)}</code>" if team else ""
    email = session.get("customer_email") or _email(team)
    if session["status"] != "open":
        body = f"""<h1>Checkout</h1><div class="card"><p>This Checkout Session is {e(session["status"])}.</p>
<p><a href="{e(session.get("success_url"))}">Return to aigw</a></p></div>"""
        return layout("Checkout", body)
    body = f"""<h1>{"Subscribe to" if recurring else "Pay for"} {e(name)}</h1>
<div class="card"><p class="amount" data-amount="{e(session["amount_total"])}">{e(amount)}</p>
<p class="muted">Plan <code>{e(price.get("lookup_key"))}</code>{for_team}</p></div>
{_message(error)}
<form method="post" class="card" aria-label="Payment">
<label for="email">Email</label>
<input id="email" name="email" type="email" required value="{e(email)}">
{card_choices()}
<button type="submit">{"Subscribe" if recurring else "Pay"}</button>
</form>
<p><a href="{e(session.get("cancel_url"))}">Cancel and return to aigw</a></p>"""
    return layout("Checkout", body)


def authenticate(action: str, hidden: dict[str, str], amount: int, what: str) -> str:
    fields = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in hidden.items())
    body = f"""<h1>3-D Secure authentication</h1>
<div class="card"><p>The bank asks you to confirm the payment of <strong>{e(money(amount))}</strong> for
{e(what)}. In Stripe's test mode this is the page where the test card is authenticated or not.</p>
<form method="post" action="{e(action)}">{fields}
<button type="submit" name="authentication" value="complete">Complete authentication</button>
<button type="submit" name="authentication" value="fail" class="danger">Fail authentication</button>
</form></div>"""
    return layout("3-D Secure", body)


def _email(team: Any) -> str:
    return f"billing@{team or 'example'}.test"


# ---- the customer portal -------------------------------------------------------------------------


def portal(
    session: Obj,
    view: CustomerView,
    deliveries: list[Delivery],
    notifications: list[tuple[str, Obj]],
    *,
    back: str,
    notice: str | None = None,
    error: str | None = None,
) -> str:
    customer = view.customer
    back = session.get("return_url") or "/portal"
    pm = view.payment_method
    card = f"{pm['card']['brand'].title()} •••• {pm['card']['last4']}" if pm else "none"
    subs = "".join(_subscription(s, session["id"]) for s in view.subscriptions) or "<p>No subscription.</p>"
    clock = (
        f'<p class="muted">Test clock: {e(day(view.clock["frozen_time"]))}</p>'
        if view.clock and int(view.clock["frozen_time"]) > int(view.clock["created"])
        else ""
    )
    body = f"""<p><a href="{e(back)}">← Return to aigw</a></p>
<h1>Billing for {e(customer.get("name"))}</h1>
<p class="muted">{e(customer.get("email"))} · customer <code>{e(customer["id"])}</code></p>{clock}
{_message(error, notice)}
<h2>Subscription</h2>{subs}
<h2>Payment method</h2>
<div class="card"><p>Default card: <strong data-card>{e(card)}</strong></p>
<form method="post"><input type="hidden" name="action" value="card">{card_choices(_card_number(pm))}
<button type="submit" class="secondary">Update payment method</button></form></div>
<h2>Invoices</h2>{_invoices(view.invoices)}
{_deliveries(deliveries, back)}{_notifications(notifications)}"""
    return layout("Billing portal", body)


def _card_number(pm: Obj | None) -> str:
    return str((pm or {}).get("metadata", {}).get("aigw_sim_card") or "4242424242424242")


def _subscription(sub: Obj, session_id: str) -> str:
    item = sub["items"]["data"][0]
    price = item["price"]
    status = sub["status"]
    live = status not in ("canceled", "incomplete_expired")
    if not live:
        when = f"Ended {day(sub['ended_at'])}"
    elif sub["cancel_at_period_end"]:
        when = f"Cancels {day(sub['cancel_at'])}"
    else:
        when = f"Renews {day(item['current_period_end'])}"

    def button(action: str, label: str, css: str = "secondary") -> str:
        return (
            f'<form method="post" class="inline"><input type="hidden" name="action" value="{action}">'
            f'<input type="hidden" name="subscription" value="{e(sub["id"])}">'
            f'<button type="submit" class="{css}">{e(label)}</button></form>'
        )

    actions = ""
    if live and status != "incomplete":
        actions += button("renew", "Renew now (advance the test clock to the period's end)")
        if sub["cancel_at_period_end"]:
            actions += button("keep", "Don't cancel")
        else:
            actions += button("cancel", "Cancel subscription", "danger")
        actions += button("cancel_now", "Cancel immediately", "danger")
    return f"""<div class="card" data-subscription="{e(sub["id"])}">
<p><strong>{e(price.get("lookup_key"))}</strong> · {e(money(price["unit_amount"]))} per month ·
<span class="badge status-{e(status)}" data-status="{e(status)}">{e(status)}</span></p>
<p class="muted">Current period {e(day(item["current_period_start"]))} to {e(day(item["current_period_end"]))}
· {e(when)}</p>{actions}</div>"""


def _invoices(invoices: Iterable[Obj]) -> str:
    rows = []
    for inv in invoices:
        if inv["status"] == "draft":
            continue
        pay = f'<a href="{e(inv["hosted_invoice_url"])}">Pay</a>' if inv["status"] == "open" else ""
        rows.append(
            f"<tr><td>{e(inv['number'])}</td><td>{e(day(inv['created']))}</td><td>{e(money(inv['amount_due']))}</td>"
            f'<td><span class="badge status-{e(inv["status"])}">{e(inv["status"])}</span></td>'
            f"<td>{pay}</td></tr>"
        )
    if not rows:
        return "<p>No invoices.</p>"
    head = "<tr><th>Number</th><th>Date</th><th>Amount</th><th>Status</th><th></th></tr>"
    return f'<table aria-label="Invoices"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _deliveries(deliveries: list[Delivery], back: str) -> str:
    if not deliveries:
        return ""
    rows = "".join(
        f"<tr><td><code>{e(d.type)}</code></td><td>{e(d.status or '—')}</td><td>{e(d.outcome or '')}</td>"
        f'<td><form method="post" action="/_stripe/events/{e(d.id)}/resend" class="inline">'
        f'<input type="hidden" name="back" value="{e(back)}">'
        f'<button type="submit" class="secondary small" aria-label="Resend {e(d.type)}">Resend</button>'
        "</form></td></tr>"
        for d in deliveries
    )
    return f"""<h2>Webhook events sent to the gateway</h2>
<p class="muted">Newest first; each signed with the local webhook secret and posted to /webhooks/stripe.</p>
<table aria-label="Webhook events">
<thead><tr><th>Event</th><th>HTTP</th><th>Gateway</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>"""


def _notifications(notifications: list[tuple[str, Obj]]) -> str:
    if not notifications:
        return ""
    rows = "".join(
        f"<tr><td>{e(kind)}</td><td>{e(detail.get('at'))}</td><td><code>{e(_short(detail))}</code></td></tr>"
        for kind, detail in notifications
    )
    return f"""<h2>Notifications from the gateway</h2>
<p class="muted">What the gateway sent to EventBridge (locally, to the runner's stand-in).</p>
<table aria-label="Notifications"><thead><tr><th>Type</th><th>At</th><th>Detail</th></tr></thead>
<tbody>{rows}</tbody></table>"""


def _short(detail: Obj) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("at", "team_id"))


# ---- the hosted invoice page ------------------------------------------------------------------------


def invoice(inv: Obj, *, back: str, error: str | None = None) -> str:
    status = inv["status"]
    form = ""
    if status == "open":
        form = f"""<form method="post" class="card" aria-label="Payment">{card_choices()}
<button type="submit">Pay {e(money(inv["amount_remaining"]))}</button></form>"""
    body = f"""<h1>Invoice {e(inv.get("number"))}</h1>
<div class="card"><p class="amount">{e(money(inv["amount_due"]))}</p>
<p>Status <span class="badge status-{e(status)}" data-status="{e(status)}">{e(status)}</span>
· {e(inv.get("customer_name"))} · {e(inv.get("customer_email"))}</p>
<p class="muted">{e(inv["lines"]["data"][0]["description"])} · attempts {e(inv["attempt_count"])}</p></div>
{_message(error)}{form}<p><a href="{e(back)}">Return to aigw</a></p>"""
    return layout(f"Invoice {inv.get('number')}", body)


# ---- the index -------------------------------------------------------------------------------------------


def index(customers: list[Obj], deliveries: list[Delivery], notifications: list[tuple[str, Obj]]) -> str:
    rows = "".join(
        f"<tr><td><code>{e(c['id'])}</code></td><td>{e(c.get('name'))}</td><td>{e(c.get('email'))}</td></tr>"
        for c in customers
    )
    table = (
        f'<table aria-label="Customers"><thead><tr><th>Customer</th><th>Name</th><th>Email</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>No customers yet: a team's first Checkout creates one.</p>"
    )
    body = f"""<h1>Simulated Stripe</h1>
<p>API version <code>{e(o.API_VERSION)}</code>. The gateway's 402 fix links and the portal's billing
buttons open Checkout and the customer portal here. Set <code>STRIPE_API_KEY=sk_test_...</code> and
<code>STRIPE_WEBHOOK_SECRET</code> to use Stripe's test mode instead.</p>
<h2>Customers</h2>{table}{_deliveries(deliveries, "/_stripe/")}{_notifications(notifications)}"""
    return layout("Simulated Stripe", body)


def not_found(what: str) -> str:
    return layout("Not found", f"<h1>Not found</h1><p>{e(what)}</p>")
