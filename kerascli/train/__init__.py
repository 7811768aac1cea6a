"""Training, evaluation and prediction loops (pure: they emit events, never print)."""
