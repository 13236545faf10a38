"""Cross-cutting services: the metrics registry, log format, task sets, resource paths."""
