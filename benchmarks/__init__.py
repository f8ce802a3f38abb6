"""Side-by-side benchmarks of kgw, jupyter_kernel_gateway and direct ZeroMQ (the floor).

Run ``python benchmarks/run.py`` (see docs/benchmarks.md).
"""
