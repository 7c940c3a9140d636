"""Database plumbing: one metadata, engines, the embedded server, migrations."""
