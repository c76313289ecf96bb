"""The test workers: two message contracts, the workers serving them, and a few
modules kept apart on purpose.

The contracts:

- ``messages.py`` (`Messages`), the plain contract: echoes, records, errors,
  waits (``Hold``, ``Stall``, ``Hang``), startup data, the worker's output and
  its view of itself (``Print``, ``Look``), events and streams. Its worker is
  ``echo.py``, with the handlers of ``echo_handlers.py``.
- ``fault_messages.py`` (`Faults`), the fault contract: every plain message,
  and those by which the worker dies, misbehaves or takes bad input. Its worker
  is ``fault_worker.py``, which reuses the plain handlers.

Launch variants serve one of these contracts, started or set up differently:

- plain: ``tr_worker.py`` prints before its handshake and runs as a script too
  (next to ``tr_sibling.py``); ``ext_worker.py`` takes its serializer and
  middleware from its startup data; ``serve_in_loop.py`` serves from an event
  loop of its own; ``sec_blocked.py`` holds a worker back before it connects;
  ``bad_serializer.py`` uses a serializer of another name.
- fault: ``slow_start.py`` pauses before its handshake;
  ``bad_input_raw_worker.py`` fakes a worker, answering with frames it builds by
  hand (its own requests, `fault_messages.RawFaults`, are ones no real worker
  could answer).

Kept apart, because they are no general contract:

- ``fuzz_messages.py`` (with ``fuzz_worker.py``): test_fuzz.py's model, whose
  shapes the fuzzer generates values against.
- ``unit_messages.py`` (with ``unit_modules.py``): test_import_light.py's probe,
  which must import nothing but the library.
- the other ``bad_*.py``: workers broken on purpose, for the start-up failure
  tests (``bad_contract.py`` differs from the plain contract in three messages).

Besides workers: impostors failing the handshake (``sec_impostor.py``,
``tr_impostor.py``), host programs (``dying_host.py``, ``sigpipe_host.py``,
``fault_host.py``) and functions for ``run_sync`` (``calls.py``).
"""
