"""The model lifecycle around the training gate: a retrainer on a sliding window, demotion on live
decay or age; every move of `champion` is a row of `ops.model_events` (tickcast/model_events.py).

Modules: `decay` (the live judgement and the demotion), `retrain` (one
retrain of one horizon, and the sweep of unfinished registrations), `loop` (the retrainer process).
"""
