"""Users, tasks, weights, think times, and loading scenario files."""

from __future__ import annotations

import random
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

import pytest

from twincorn.load import User, between, constant, constant_pacing, constant_throughput, task
from twincorn.load.scenario import ScenarioError, from_classes, from_file, from_spec, from_url
from twincorn.load.users import interleave, task_name

ROOT = Path(__file__).resolve().parent.parent


class Shop(User):
    host = "http://127.0.0.1:1"
    weight = 3

    @task(3)
    async def browse(self) -> None: ...

    @task
    async def buy(self) -> None: ...


class Admin(User):
    host = "http://127.0.0.1:1"

    @task
    async def report(self) -> None: ...


class Base(User):
    abstract = True

    @task(2)
    async def shared(self) -> None: ...


class Child(Base):
    @task
    async def own(self) -> None: ...


def test_task_weights_are_respected() -> None:
    random.seed(1)
    user = Shop.__new__(Shop)
    picks = Counter(user.pick_task().__name__ for _ in range(20_000))
    assert abs(picks["browse"] / 20_000 - 0.75) < 0.02
    assert set(picks) == {"browse", "buy"}


def test_tasks_are_inherited_and_abstract_classes_skipped() -> None:
    funcs, cumulative = Child._task_table
    assert {f.__name__ for f in funcs} == {"shared", "own"}
    assert cumulative[-1] == 3
    assert Base.abstract and not Child.abstract


class Checkout(Base):
    sequential = True

    @task
    async def log_in(self) -> None: ...

    @task(5)  # weights do not matter in a sequence
    async def pay(self) -> None: ...


def test_a_sequential_user_runs_its_tasks_in_order() -> None:
    user = Checkout.__new__(Checkout)
    names = [user.pick_task().__name__ for _ in range(6)]
    assert names == ["shared", "log_in", "pay"] * 2  # the base's task first
    other = Checkout.__new__(Checkout)
    assert other.pick_task().__name__ == "shared"  # each user has its own place


def test_tasks_attribute_list_and_dict() -> None:
    async def a(user: Any) -> None: ...

    async def b(user: Any) -> None: ...

    class Listed(User):
        tasks = (a, a, b)

    class Weighted(User):
        tasks: ClassVar[dict[Any, int]] = {a: 1, b: 4}

    assert Listed._task_table == ([a, b], [2, 3])
    assert Weighted._task_table == ([a, b], [1, 5])


def test_a_user_without_tasks_is_an_error() -> None:
    with pytest.raises(TypeError, match="no tasks"):

        class Empty(User):
            pass


def test_class_weights_interleave_exactly() -> None:
    order = [c.__name__ for c in islice(interleave([Shop, Admin]), 8)]
    assert Counter(order) == {"Shop": 6, "Admin": 2}
    assert order[:4].count("Admin") == 1  # spread out, not all at the end


def test_wait_times() -> None:
    user: Any = object.__new__(Shop)
    user.task_started = None
    for _ in range(100):
        assert 1 <= between(1, 2)(user) <= 2
    assert constant(3)(user) == 3
    assert constant_pacing(2)(user) == 2  # no task yet
    user.task_started = time.monotonic() - 0.5
    assert 1.4 < constant_pacing(2)(user) <= 1.5
    user.task_started = time.monotonic() - 5
    assert constant_pacing(2)(user) == 0
    user.task_started = time.monotonic()
    assert 0.24 < constant_throughput(4)(user) <= 0.25
    with pytest.raises(ValueError):
        between(2, 1)


def test_task_decorator_forms() -> None:
    assert task(lambda self: None).twincorn_task_weight == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        task(-1)
    assert task_name(Shop, Shop.browse) == "Shop.browse"


def test_the_example_scenario_file() -> None:
    scenario = from_file(str(ROOT / "examples" / "loadtest.py"))
    assert [c.__name__ for c in scenario.user_classes] == ["Visitor"]
    visitor = scenario.user_classes[0]
    waits = [visitor.wait_time(object.__new__(visitor)) for _ in range(50)]
    assert all(5 <= w <= 15 for w in waits)
    assert from_spec(scenario.spec).user_classes[0].__name__ == "Visitor"


def test_scenario_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        from_file(str(tmp_path / "missing.py"))
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ScenarioError, match="no User class"):
        from_file(str(empty))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ScenarioError, match="boom"):
        from_file(str(broken))


def test_specs_rebuild_scenarios() -> None:
    url = from_url("http://127.0.0.1:8000/x?y=1", "post", ("X-A: 1",), "body")
    again = from_spec(url.spec)
    assert again.builtin == url.builtin
    assert url.builtin is not None and url.builtin.headers == (("X-A", "1"),)
    classes = from_classes([Shop, Admin])
    assert from_spec(classes.spec).user_classes == [Shop, Admin]

    def local() -> type[User]:
        class Local(User):
            @task
            async def t(self) -> None: ...

        return Local

    with pytest.raises(ScenarioError, match="module level"):
        from_spec(from_classes([local()]).spec)
