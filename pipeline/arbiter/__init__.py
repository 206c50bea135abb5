"""The failover arbiter: requests, deadlines, policies, checks, worker health and recovery."""
