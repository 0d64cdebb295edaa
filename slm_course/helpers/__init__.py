"""Plumbing for notebooks and runs, kept apart from the teaching modules: the fast/full
workload, seeding, the device, evaluation mode, showing source, the notebook session, the
set-up check, config dicts, checkpoints, distributed set-up and plots."""
