"""Bare git repositories that receive pushes, and builds from them."""
