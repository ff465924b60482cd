"""Fuzzing of the HTTP/1.1 core (not collected by pytest, not shipped).

The pieces, each in its own module:

    source.py           where the randomness comes from: a seeded Random, the
                        input bytes themselves (atheris, reproducers) or
                        hypothesis's draws, behind one small interface
    generate.py         structurally plausible request streams
    mutate.py           byte-level mutations of any input
    corpus.py           seeds: tests/data/http1-requests/, mutated
    strategies.py       hypothesis strategies over the generators
    finding.py          what a target raises when an oracle fails
    oracles.py          what must hold whatever the input (parser side)
    responses.py        the response writer's oracle (h11's client reads it)
    differential.py     twincorn's parser beside h11's server, request by request
    known.py            the known differences from h11, each with its reason
    targets.py          the targets: a name, a function fed one input that
                        raises Finding, and a generator of its inputs
    record.py           findings kept once each, as reproducer files
    run.py              the long run (`make fuzz`) over processes
    hypothesis_phase.py hypothesis's part of the long run
    atheris_phase.py    atheris's part of the long run
    atheris_main.py     coverage-guided runs of one target

docs/fuzzing.md says what each oracle checks and how to run it.
"""
