"""The deploy flow and everything that keeps apps serving: checks, swap, retire, scale, watch, reconcile."""
