"""Plain types at the bottom of the supervisor: specs, release types, defaults, the error tree."""
