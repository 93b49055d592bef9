"""Benchmarks of complaint-gateway (not part of the installed package).

``python bench/run.py [--scenario wechat|mixed|pollers|notifications|stages|all]``
is the entry point; each scenario is a module of its own:

* :mod:`bench.webhooks`: (a) raw producer, (b) WeChat end to end, (c) latency;
* :mod:`bench.mixed`: a mix of every webhook channel end to end, next to WeChat alone;
* :mod:`bench.pollers`: a 100,000-line ``Master.csv`` and a 5,000-mail IMAP mailbox;
* :mod:`bench.notifications`: intake with and without notifications, and notifications/s;
* :mod:`bench.stages`: intake with triage and linking on, triage only, and both off.

Offline, without a broker: ``bench/triage_eval.py`` (triage quality and cost),
``bench/linking_eval.py`` (linking precision and recall), ``bench/state_memory.py``
(bytes per dedupe key and per linking record).

What they share, one concept a module: :mod:`bench._broker` (Tansu and topic
reading), :mod:`bench._gateway` (a gateway process and its ``/metrics``),
:mod:`bench._traffic` (signed requests of each channel), :mod:`bench._load`
(the raw-asyncio load generator), :mod:`bench._producer` (the bare aiokafka
producer), :mod:`bench._child` (running those two as child processes),
:mod:`bench._cpu` (CPU accounting from ``/proc``), :mod:`bench._report`
(tables and the machine description), :mod:`bench._customers` (WeChat messages in many
customers' own words) and :mod:`service.dovecot` (a private IMAP server).
"""
