"""Database layer: models, engines and schema migrations."""
