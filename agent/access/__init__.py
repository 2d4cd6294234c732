"""Who calls, and how much they may: API keys (their secrets, the principal a request acts as, the store's book
of them) and their limits across every instance. Below the API: nothing here knows HTTP."""
