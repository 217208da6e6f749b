"""From case outcomes to the run's verdict: aggregation per eval and model, statistics, the
baseline comparison and the exit status."""
