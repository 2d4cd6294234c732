"""Where tasks are kept so every instance sees them: one contract (base.py), three stores."""
