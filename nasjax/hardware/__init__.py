"""Hardware cost models: analytic FLOPs/params (``flops``), measured latency tables (``latency``), portable model
files (``model_io``) and the device-generic latency models: DGL's hardware-parameter model (``dgl``) and the
few-shot model of a device from k measurements (``fewshot``). Submodules are imported on demand (this package
imports nothing)."""
