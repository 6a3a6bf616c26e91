"""Policies: heuristics, LP scheduler, oracle (issue 4)."""
