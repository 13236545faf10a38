"""The container engine behind the `Runtime` Protocol, and the Docker implementation."""
