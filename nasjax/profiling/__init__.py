"""Block profiling: accuracy contributions of every block choice computed by a supernet
(``nasjax.profiling.contributions``). Submodules are imported on demand."""
