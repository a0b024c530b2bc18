"""The command line: parse arguments, call the API, render human or JSON output.

Layer L4: the only place that prints or chooses an exit status.
"""
