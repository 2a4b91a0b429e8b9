"""Hardware cost models: analytic FLOPs/params (``flops``), measured latency tables (``latency``) and
device-generic latency predictors. Submodules are imported on demand (this package imports nothing)."""
