"""tickcast dashboard (component)."""
