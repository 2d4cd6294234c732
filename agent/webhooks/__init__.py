"""Webhooks: a run's events POSTed to the caller's URL, signed per the Standard Webhooks specification."""
