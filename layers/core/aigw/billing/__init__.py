"""Billing: who may call and on what terms, what each call holds and costs, and Stripe.

Pure rules (:mod:`.rules`), the team's billing item (:mod:`.account`, its only reader and
writer), admission and the meter, holds, rate limits, plans and pricing, and the Stripe
modules (links and sessions, webhook events, Billing Meters).
"""
