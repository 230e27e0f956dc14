"""Test doubles for tests and benchmarks: never imported by the product (an import-linter contract).

`python -m testkit.standin_exchange`: a stand-in for Binance's REST and WebSocket APIs.
"""
