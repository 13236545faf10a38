"""Plain helpers that know nothing of dockyard's domain, for every layer above: writing a file
atomically (`files.write_atomic`) and splitting a `host:port` listen address
(`address.split_listen`). Imports the standard library only."""
