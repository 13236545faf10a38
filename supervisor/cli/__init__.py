"""The `dockyard` command line: argument parsing, the control API client, rendering."""
