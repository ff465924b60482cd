"""twincorn lab: the blocking-WSGI-against-async-ASGI experiment (docs/tutorial.md).

setups.py holds the configurations and the model, servers.py starts and
stops them, measure.py loads them through twincorn load (and cpu.py says
who used the CPU meanwhile), experiment.py runs the matrix, analysis.py
reads the numbers in words, charts.py decides what the charts show, and
report.py (index.html, with report.js) and pngs.py draw them.
"""
