"""The domain: labeling configs, tasks, completions and the rules that pick training data.

Pure code: no I/O, no clocks, no environment. Everything else depends on it;
it depends on nothing in annotrain but itself.
"""
