"""tickcast bench (component)."""
