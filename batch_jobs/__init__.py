"""Job entry points: ``python -m batch_jobs.<kind> --run-id <id>``, locally or on AWS Batch.

Each job module wires its work into :func:`batch_jobs.runtime.run_job`, which
opens the store, keeps the run's status and heartbeat, and sets the exit code.
"""
