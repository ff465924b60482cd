"""The asyncio driver: connections, accepting, timeouts, one worker's loop."""
