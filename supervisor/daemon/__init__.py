"""`dockyard serve`: wiring, lifecycle, reload and takeover."""
