"""What each key used: the ledger's writer (a subscriber of the runs) and the reports read from it."""
