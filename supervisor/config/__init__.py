"""Reading what users write: TOML, Dokku app.json and Procfile, validators, the one merge."""
