"""The plumbing train.py and evaluate.py share; the policies themselves live in ``agents``.

- ``runs``: what a run folder holds, atomic writes, the checkpoint and resume state
- ``hyperparams``: rl-baselines3-zoo hyperparameter files; ``algorithms``: the algorithms train.py offers
- ``vec_env``: the SB3 VecEnv over the native batched environment; ``callbacks``: KPIs, checkpoints, evaluation
- ``trained``: a train.py run loaded as a policy
- ``episodes``: running a policy on seeds, and which seeds serve what
- ``stats``: bootstrap intervals, IQM, paired differences, probability of improvement
- ``comparison`` and ``plots``: the held-out comparison evaluate.py runs and its figures
- ``cli``: the typed command-line parser of both scripts
"""
