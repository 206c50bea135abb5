"""The graph's control plane: commands from `redline ctl` over an authenticated endpoint."""
