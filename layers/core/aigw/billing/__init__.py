"""Billing: who may call and on what terms, what each call holds and costs, and Stripe.

Pure rules (:mod:`.rules`: who may call; :mod:`.budget`: worst cases and slice sizes), the
team's billing item (:mod:`.account`, its only reader and writer), admission and the meter,
budget leases (:mod:`.leases`), per-key budgets, rate limits, plans and pricing, and the Stripe
modules (links and sessions, webhook events, Billing Meters).
"""
