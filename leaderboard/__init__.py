"""The leaderboard: evaluate.py results per scenario and seed (leaderboard.json) and their table (README.md),
built by ``python -m leaderboard.build``."""
