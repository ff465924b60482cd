"""Virtual users, their tasks and their think time (a locustfile, async).

    class Visitor(User):
        host = "http://127.0.0.1:8000"
        weight = 3                      # three Visitors for each user of weight 1
        wait_time = between(5, 15)      # seconds of think time after each task

        async def on_start(self): ...   # once, before the first task
        @task(3)
        async def index(self):          # picked three times as often as...
            await self.client.get("/")
        @task
        async def about(self):          # ...this one
            await self.client.get("/about")

Tasks may also be given as `tasks = [func, ...]` or `tasks = {func: weight}`
(functions taking the user). A class with `abstract = True` is a base for
others and is not run itself. Tasks are picked at random, in proportion to
their weights — or, with `sequential = True` (Locust's SequentialTaskSet,
for a flow such as log in, browse, check out), run in the order they are
written, a base class's first, over and over, weights ignored. Users of
several classes are started in proportion to the classes' weights, in a
fixed interleaved order (so -u 4 with weights 3 and 1 gives exactly three
and one).

The wait_time helpers return functions of the user, as in Locust:
`between(a, b)` waits a random time in [a, b]; `constant(t)` waits t;
`constant_pacing(t)` starts a task every t seconds (waiting t minus the
time the task took, at least 0); `constant_throughput(n)` runs n tasks per
second (constant_pacing(1 / n)).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

if TYPE_CHECKING:
    from twincorn.load.client import HttpClient

TaskFunc = Callable[[Any], Awaitable[Any]]
WaitTime = Callable[[Any], float]
F = TypeVar("F", bound=Callable[..., Any])

_WEIGHT = "twincorn_task_weight"


@overload
def task(weight: F) -> F: ...
@overload
def task(weight: int = 1) -> Callable[[F], F]: ...


def task(weight: Any = 1) -> Any:
    """Mark an async method as a task: `@task` or `@task(weight)`."""
    if callable(weight):
        setattr(weight, _WEIGHT, 1)
        return weight

    if not isinstance(weight, int) or weight < 0:
        raise ValueError(f"@task(weight): a whole number >= 0, got {weight!r}")

    def mark(func: F) -> F:
        setattr(func, _WEIGHT, weight)
        return func

    return mark


def between(low: float, high: float) -> WaitTime:
    """Think time: a random number of seconds in [low, high]."""
    if low > high:
        raise ValueError(f"between({low}, {high}): low is above high")

    def wait_time(user: Any) -> float:
        return random.uniform(low, high)

    return wait_time


def constant(seconds: float) -> WaitTime:
    """Think time: always `seconds`."""

    def wait_time(user: Any) -> float:
        return seconds

    return wait_time


def constant_pacing(seconds: float) -> WaitTime:
    """Start a task every `seconds` (less the time the last task took)."""

    def wait_time(user: Any) -> float:
        started: float | None = getattr(user, "task_started", None)
        if started is None:
            return seconds
        return max(0.0, seconds - (time.monotonic() - started))

    return wait_time


def constant_throughput(tasks_per_second: float) -> WaitTime:
    """Run `tasks_per_second` tasks per second, per user (at most)."""
    if tasks_per_second <= 0:
        raise ValueError("constant_throughput: the rate must be more than 0")
    return constant_pacing(1.0 / tasks_per_second)


class User:
    """A virtual user: subclass it, give it tasks (see the module doc)."""

    host: ClassVar[str | None] = None
    weight: ClassVar[int] = 1
    abstract: ClassVar[bool] = True
    tasks: ClassVar[Sequence[TaskFunc] | dict[TaskFunc, int] | None] = None
    sequential: ClassVar[bool] = False
    _next_task = 0  # sequential: the index of the next task (set per user once it runs)
    _task_table: ClassVar[tuple[list[TaskFunc], list[int]]] = ([], [])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False
        cls._task_table = _task_table(cls)
        if not cls.abstract and not cls._task_table[0]:
            raise TypeError(
                f"{cls.__name__} has no tasks: mark async methods with @task, or set tasks"
            )

    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.task_started: float | None = None  # time.monotonic() when the last task began

    def wait_time(self) -> float:
        """Think time after each task (closed model); none by default."""
        return 0.0

    async def on_start(self) -> None:
        """Called once when the user starts, before its first task."""

    async def on_stop(self) -> None:
        """Called once when the user stops."""

    def pick_task(self) -> TaskFunc:
        """A task at random, in proportion to the weights (or the next one
        in order, for a sequential user)."""
        funcs, cumulative = self._task_table
        if len(funcs) == 1:
            return funcs[0]
        if self.sequential:
            func = funcs[self._next_task % len(funcs)]
            self._next_task += 1
            return func
        return random.choices(funcs, cum_weights=cumulative)[0]


def _task_table(cls: type[User]) -> tuple[list[TaskFunc], list[int]]:
    weighted: dict[TaskFunc, int] = {}
    if cls.tasks is not None:
        if isinstance(cls.tasks, dict):
            weighted = dict(cls.tasks)
        else:
            for func in cls.tasks:
                weighted[func] = weighted.get(func, 0) + 1
    else:
        # In the order they are written, a base class's before its
        # subclass's (an override keeps its base's place).
        found: dict[str, TaskFunc] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if name in found or getattr(value, _WEIGHT, None) is not None:
                    found[name] = value
        for value in found.values():
            weight = getattr(value, _WEIGHT, None)
            if weight:
                weighted[value] = weight
    funcs = [f for f, w in weighted.items() if w > 0]
    cumulative: list[int] = []
    running = 0
    for func in funcs:
        running += weighted[func]
        cumulative.append(running)
    return funcs, cumulative


def task_name(user_class: type[User], func: TaskFunc) -> str:
    return f"{user_class.__name__}.{getattr(func, '__name__', repr(func))}"


def interleave(classes: Sequence[type[User]]) -> Iterator[type[User]]:
    """User classes, forever, in proportion to their weights and spread out
    (smooth weighted round robin: weights 3 and 1 give A A B A, A A B A...)."""
    weights = [max(0, c.weight) for c in classes]
    if not classes or sum(weights) == 0:
        raise ValueError("no User class with a weight above 0")
    current = [0] * len(classes)
    total = sum(weights)
    while True:
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(classes)), key=current.__getitem__)
        current[best] -= total
        yield classes[best]
