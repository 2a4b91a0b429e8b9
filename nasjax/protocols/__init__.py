"""Evaluation protocols: how a method is judged on published data (regret of an exact search against the
true optimum, latency-constrained search with predicted latency, leave-one-device-out and unseen-device
latency prediction)."""
