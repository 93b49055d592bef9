"""Rule-based triage: category, priority and expectations of a complaint, with reasons.

:mod:`triage.ruleset` loads and validates a rules file (the shipped default is
``triage/rules.toml``); :class:`triage.engine.Triage` applies it, as a pure
function of the customer's words and the channel's data.
"""
