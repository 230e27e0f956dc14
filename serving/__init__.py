"""tickcast serving (component)."""
