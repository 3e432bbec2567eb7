"""Versioned schema migrations, applied in name order by ``helpdeskd migrate``."""
