"""The prefork master: binds, forks workers, supervises them, reacts to signals.

It never runs an event loop and never imports the application (unless
--preload): a worker's crash, or a bad deploy, cannot take it down.
"""
