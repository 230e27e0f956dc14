"""Where ticks come from, below both the producers and the jobs: the exchange's REST API and
its rate limits, klines, Binance's public-data files and the simulator."""
