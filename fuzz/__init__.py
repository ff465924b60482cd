"""Fuzzing of the HTTP/1.1 core (not collected by pytest, not shipped).

The pieces, each in its own module:

    source.py       where the randomness comes from: a seeded Random, the
                    input bytes themselves (atheris, reproducers) or
                    hypothesis's draws, behind one small interface
    generate.py     structurally plausible request streams and responses
    mutate.py       byte-level mutations of any input
    strategies.py   hypothesis strategies over generate.py and mutate.py
    oracles.py      what must hold whatever the input (parser side)
    responses.py    the response writer's oracle (h11's client parses it)
    differential.py twincorn's parser beside h11's server, request by request
    targets.py      the targets: a name and a function fed one input that
                    raises Finding on anything wrong
    run.py          the long run (`make fuzz`) over processes
    atheris_main.py coverage-guided runs of the same targets

docs/fuzzing.md says what each oracle checks and how to run it.
"""
