"""Plain helpers that know nothing of dockyard's domain, for every layer above: writing a file
atomically (`files.write_atomic`) and splitting a `host:port` listen address
(`address.split_listen`), and the daemon's lowered priority while it starts
(`priority`). Imports the standard library only."""
