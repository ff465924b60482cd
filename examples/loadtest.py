"""The seed's locustfile, for `twincorn load`: each visitor GETs / and then
thinks for 5 to 15 seconds.

    twincorn serve examples.wsgi.slow_app:app -w 4 &
    twincorn load -f examples/loadtest.py -H http://127.0.0.1:8000 -u 20 -r 2 -t 2m
    twincorn load -f examples/loadtest.py -H http://127.0.0.1:8000 --web

The same as Locust's, but async: `User` instead of HttpUser, and each
request is awaited.
"""

from twincorn.load import User, between, task


class Visitor(User):
    wait_time = between(5, 15)

    @task
    async def index(self):
        await self.client.get("/")
