"""twincorn lab: the blocking-WSGI-against-async-ASGI experiment (docs/tutorial.md).

setups.py holds the configurations and the model, servers.py starts and
stops them, measure.py loads them through twincorn load, experiment.py runs
the matrix, analysis.py reads the numbers and report.py draws them.
"""
