"""Data files shipped with satmae (statistics JSON)."""
