"""SQLite state: releases, retire timers, repository files, scale, stopped apps."""
